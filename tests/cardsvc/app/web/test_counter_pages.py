"""The counter's pages: sessions, CSRF, roles, languages and what the clerk sees. The first
tests speak HTTP as a browser does; the last drive Chromium itself."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from cardsvc.app.http import create_app
from cardsvc.app.web import pages
from cardsvc.context import Actor
from cardsvc.db import unit_of_work
from cardsvc.staff import service as staff_service
from tests.support import factories as f
from tests.support.api import PASSWORD, ROLES
from tests.support.browser import chromium_path, live_server, screenshot
from tests.support.worlds import bills_csv, water_bill

DESK = "KM-JC-1"


@pytest.fixture
def counter(rt) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with unit_of_work(rt.sessions) as db:
        if DESK not in {d.code for d in staff_service.desks(db)}:
            staff_service.add_desk(db, Actor.system("tests"), DESK, "金城櫃台 1")
    with TestClient(create_app(rt), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        yield client


def login(client: TestClient, role: str, desk: str = DESK) -> TestClient:
    page = client.get("/counter/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = client.post("/counter/login", data={"username": f"t.{role}", "password": PASSWORD,
                                            "desk": desk, "csrf": csrf.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/counter", r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/counter" in cookie
    return client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m is not None
    return m.group(1)


def test_pages_need_a_session(counter: TestClient) -> None:
    r = counter.get("/counter")
    assert r.status_code == 303 and r.headers["location"] == "/counter/login"
    counter.cookies.set("kmc_session", "forged~KM-JC-1~0000", path="/counter")
    r = counter.get("/counter/residents")
    assert r.status_code == 303 and r.headers["location"] == "/counter/login?expired=1"


def test_login_needs_a_registered_desk_and_the_right_password(counter: TestClient) -> None:
    page = counter.get("/counter/login")
    assert DESK in page.text
    token = csrf_of(page.text)
    r = counter.post("/counter/login", data={"username": "t.clerk", "password": PASSWORD,
                                             "desk": "KM-JC-l", "csrf": token})
    assert r.status_code == 422 and "請從清單選擇您的櫃台" in r.text  # a typo opens no drawer
    r = counter.post("/counter/login", data={"username": "t.clerk", "password": "wrong",
                                             "desk": DESK, "csrf": csrf_of(r.text)})
    assert r.status_code == 401 and "帳號或密碼錯誤" in r.text
    r = counter.post("/counter/login", data={"username": "t.clerk", "password": PASSWORD,
                                             "desk": DESK})
    assert r.status_code == 403  # no login form token: not this counter's page


def test_a_form_without_its_csrf_token_is_refused(counter: TestClient, rt) -> None:  # type: ignore[no-untyped-def]
    login(counter, "clerk")
    person = f.new_person_id()
    data = {"name": "無權杖", "person_id": person, "birth_date": "1980-01-02",
            "township": "金城鎮"}
    r = counter.post("/counter/residents/new", data=data)
    assert r.status_code == 403 and "無權限" in r.text
    r = counter.post("/counter/residents/new", data={**data, "csrf": "0" * 32})
    assert r.status_code == 403
    with unit_of_work(rt.sessions) as db:  # nothing was registered
        from cardsvc.holders import service as holders
        ctx = rt.ctx(db, Actor.system("tests"))
        assert holders.search(ctx, "test check", person, None, 5) == []


def test_registration_checks_field_by_field_and_reads_roc_dates(counter: TestClient) -> None:
    login(counter, "clerk")
    token = csrf_of(counter.get("/counter/residents/new").text)
    bad = counter.post("/counter/residents/new", data={
        "name": "", "person_id": "A123456788", "birth_date": "115/13/40", "township": "",
        "csrf": token})
    assert bad.status_code == 422
    fields = set(re.findall(r'data-field="([a-z_]+)"', bad.text))
    assert {"name", "person_id", "birth_date"} <= fields
    assert 'aria-invalid="true"' in bad.text
    person = f.new_person_id()
    ok = counter.post("/counter/residents/new", data={
        "name": "陳金城", "person_id": person, "birth_date": "47/03/02", "township": "金城鎮",
        "csrf": token})
    assert ok.status_code == 200 and "已登錄" in ok.text
    assert person not in ok.text and person[:2] in ok.text  # masked on the page


def test_search_results_are_masked_and_audited(counter: TestClient, auditor) -> None:  # type: ignore[no-untyped-def]
    login(counter, "clerk")
    person = f.new_person_id()
    token = csrf_of(counter.get("/counter/residents/new").text)
    counter.post("/counter/residents/new", data={
        "name": "王查詢", "person_id": person, "birth_date": "1990-05-06", "township": "金湖鎮",
        "csrf": token})
    token = csrf_of(counter.get("/counter/residents").text)
    r = counter.post("/counter/residents", data={"purpose": "counter service",
                                                 "query": person, "csrf": token})
    assert r.status_code == 200 and "王查詢" in r.text and person not in r.text
    searches = auditor.ok("GET", "/audit/events", action="cardholder.search", limit=5)
    assert searches[0]["purpose"] == "counter service"


def test_a_clerk_cannot_reach_supervisor_pages(counter: TestClient, rt) -> None:  # type: ignore[no-untyped-def]
    login(counter, "clerk")
    assert counter.get("/counter/drawers").status_code == 403
    counter.cookies.clear()
    login(counter, "supervisor")
    r = counter.get("/counter/drawers")
    assert r.status_code == 200 and DESK in r.text


def test_the_drawer_shows_the_desks_cash(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    clerk.ok("POST", f"/cards/{card['id']}/topups", {"amount": 700, "counter": DESK},
             key=f.key())
    login(counter, "clerk")
    page = counter.get("/counter").text
    cash_in = re.search(r'data-testid="cash-in">NT\$([\d,]+)', page)
    assert cash_in is not None and int(cash_in.group(1).replace(",", "")) >= 700


def test_logout_ends_the_session_even_for_a_copied_cookie(counter: TestClient) -> None:
    login(counter, "clerk")
    copied = counter.cookies.get("kmc_session")
    token = csrf_of(counter.get("/counter").text)
    r = counter.post("/counter/logout", data={"csrf": token})
    assert r.status_code == 303 and "kmc_session=" in r.headers["set-cookie"]
    assert counter.get("/counter").status_code == 303
    counter.cookies.set("kmc_session", copied, path="/counter")  # someone kept a copy
    assert counter.get("/counter").status_code == 303


def test_every_page_declares_its_roles(counter: TestClient, rt) -> None:  # type: ignore[no-untyped-def]
    """The pages' role matrix, as the API's: anonymous → the login page, another role → 403,
    an allowed role never 403 (its POSTs carry its session's CSRF token)."""
    from cardsvc.app.web import session as web_session
    routes = [r for r in pages.router.routes if isinstance(r, APIRoute)]
    sessions = {}
    for role in ROLES:  # one login per role (a login is slow on purpose)
        counter.cookies.clear()
        login(counter, role)
        sessions[role] = counter.cookies.get("kmc_session")
    checked = 0
    for route in routes:
        deps = [d.call for d in route.dependant.dependencies]
        guard = next((d for d in deps if isinstance(d, pages.PageGuard)), None)
        if any(isinstance(d, pages.PublicPage) for d in deps):
            continue
        assert guard is not None, f"{route.path} declares no roles"
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in route.methods:
            counter.cookies.clear()
            anon = counter.request(method, path)
            assert anon.status_code == 303, f"anonymous {method} {route.path}"
            for role in ROLES:
                counter.cookies.clear()
                counter.cookies.set("kmc_session", sessions[role], path="/counter")
                if route.path == "/counter/logout" and role in guard.roles:
                    # A logout ends its session: log out a session of its own.
                    counter.cookies.clear()
                    login(counter, role)
                token = counter.cookies.get("kmc_session").split("~")[0]
                data = {"csrf": web_session.csrf_of(rt, token)} if method == "POST" else None
                r = counter.request(method, path, data=data)
                if role in guard.roles:
                    assert r.status_code != 403 and r.status_code < 500, \
                        f"{role} {method} {route.path}: {r.status_code}"
                else:
                    assert r.status_code == 403, f"{role} {method} {route.path}"
                checked += 1
    assert checked >= 50


def test_english_on_request(counter: TestClient) -> None:
    login(counter, "clerk")
    assert "今日" in counter.get("/counter").text
    counter.post("/counter/language", data={"lang": "en", "back": "/counter"})
    page = counter.get("/counter").text
    assert "Today" in page and "Cash in" in page


# --- in Chromium ----------------------------------------------------------------------------


@pytest.fixture
def browser_page(rt, counter) -> Iterator[tuple[Any, str]]:  # type: ignore[no-untyped-def]
    path = chromium_path()
    from playwright.sync_api import sync_playwright
    with live_server(rt) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            yield page, base
        finally:
            browser.close()


def test_a_clerk_logs_in_and_registers_with_the_keyboard(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base = browser_page
    page.goto(base + "/counter")
    assert page.url.endswith("/counter/login")
    screenshot(page, "login")
    # Keyboard only: the username field has the focus; Tab to the next, Enter submits.
    page.keyboard.type("t.clerk")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "desk"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(base + "/counter")
    assert page.get_by_role("heading", level=1).inner_text().startswith("今日")
    screenshot(page, "today")
    page.get_by_role("link", name="縣民", exact=True).click()
    page.get_by_role("link", name="新增縣民資料").click()
    page.get_by_label("姓名").fill("林金湖")
    page.get_by_label("身分證或居留證統一編號").fill("A123456788")  # a wrong check digit
    page.get_by_label("出生日期").fill("60/07/15")
    page.get_by_label("戶籍鄉鎮").select_option("金湖鎮")
    page.get_by_role("button", name="登錄").click()
    error = page.locator('[data-field="person_id"]')
    assert error.is_visible() and "檢查碼" in error.inner_text()
    screenshot(page, "register-refused")
    person = f.new_person_id()
    page.get_by_label("身分證或居留證統一編號").fill(person)
    page.get_by_role("button", name="登錄").click()
    created = page.get_by_test_id("created").inner_text()
    assert "林金湖" in created and person not in page.content()
    screenshot(page, "registered")


def test_every_input_has_a_label(browser_page) -> None:  # type: ignore[no-untyped-def]
    page, base = browser_page
    unlabelled_js = ("() => [...document.querySelectorAll("
                     "'input:not([type=hidden]), select, textarea')]"
                     ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
                     ".map(e => e.name || e.id)")
    page.goto(base + "/counter/login")
    assert page.evaluate(unlabelled_js) == []
    page.get_by_label("帳號").fill("t.supervisor")
    page.get_by_label("密碼").fill(PASSWORD)
    page.get_by_role("button", name="登入").click()
    page.wait_for_url(base + "/counter")
    for path in ("/counter", "/counter/residents", "/counter/residents/new",
                 "/counter/drawers"):
        page.goto(base + path)
        assert page.evaluate(unlabelled_js) == [], path
    screenshot(page, "drawers")


# --- the card at the counter ------------------------------------------------------------------


@pytest.fixture
def sim_counter(runtime_factory, tmp_path) -> Iterator[tuple[Any, TestClient]]:  # type: ignore[no-untyped-def]
    """The counter with its simulated reader: a blank card is on it whenever one is asked."""
    rt = runtime_factory(reader="sim", sim_cards_dir=tmp_path / "cards")
    with unit_of_work(rt.sessions) as db:
        if DESK not in {d.code for d in staff_service.desks(db)}:
            staff_service.add_desk(db, Actor.system("tests"), DESK, "金城櫃台 1")
    with TestClient(create_app(rt), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        yield rt, client


def open_resident(client: TestClient, holder_id: int) -> str:
    token = csrf_of(client.get("/counter/residents").text)
    r = client.post(f"/counter/residents/{holder_id}",
                    data={"purpose": "counter service", "csrf": token})
    assert r.status_code == 200, r.text
    return r.text


def form_field(html: str, action: str, name: str) -> str:
    form = html[html.index(f'action="{action}"'):]
    m = re.search(rf'name="{name}" value="([^"]+)"', form)
    assert m is not None, (action, name)
    return m.group(1)


def test_apply_issue_hand_over_and_top_up_once(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    _rt, client = sim_counter
    login(client, "clerk")
    h = f.holder(clerk, age=30)
    page = open_resident(client, h["id"])
    token = csrf_of(page)
    refused = client.post(f"/counter/residents/{h['id']}/apply", data={
        "product": "student", "purpose": "counter service", "csrf": token})
    assert refused.status_code == 422
    assert "學生卡需要有效的在學證明" in refused.text and "student.enrolment_valid" in refused.text
    applied = client.post(f"/counter/residents/{h['id']}/apply", data={
        "product": "general", "purpose": "counter service", "csrf": token})
    assert applied.status_code == 200 and "已申請" in applied.text
    card_id = int(re.search(r'action="/counter/cards/(\d+)/issue"', applied.text).group(1))  # type: ignore[union-attr]
    issued = client.post(f"/counter/cards/{card_id}/issue",
                         data={"purpose": "counter service", "csrf": token})
    assert issued.status_code == 200 and "已製卡" in issued.text
    handed = client.post(f"/counter/cards/{card_id}/hand-over",
                         data={"purpose": "counter service", "csrf": token})
    assert handed.status_code == 200 and "使用中" in handed.text
    idem = form_field(handed.text, f"/counter/cards/{card_id}/top-up", "idem")
    form = {"amount": "500", "idem": idem, "purpose": "counter service", "csrf": token}
    first = client.post(f"/counter/cards/{card_id}/top-up", data=form)
    again = client.post(f"/counter/cards/{card_id}/top-up", data=form)  # a double click
    assert first.status_code == again.status_code == 200
    assert 'data-testid="replayed"' not in first.text and 'data-testid="replayed"' in again.text
    card = clerk.ok("GET", f"/cards/{card_id}")
    assert clerk.ok("GET", f"/cards/{card_id}/purse")["balance"] == 500  # charged once
    receipt = first.text
    masked = f"{card['card_number'][:4]} **** **** {card['card_number'][-4:]}"
    assert masked in receipt and card["card_number"] not in receipt
    assert "NT$500" in receipt and DESK in receipt


def test_a_counter_day_in_chromium(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    """The counter's day end to end in a real browser: log in, register, apply (a refusal
    named), issue on the simulated reader, top up with a printable receipt, lost, replace,
    close with the refund, a bill paid, and the supervisor's drawer report."""
    runtime, _client = sim_counter
    path = chromium_path()
    from playwright.sync_api import sync_playwright
    bill = water_bill(clerk, "K0012345", "WB00012345678911", 386, "張家豪")
    _key, mobile = f.mobile_card(clerk, "android-counter-day-01", 1_000)
    person = f.new_person_id()
    with live_server(runtime) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(base + "/counter/login")
        page.get_by_label("帳號").fill("t.clerk")
        page.get_by_label("密碼").fill(PASSWORD)
        page.get_by_label("櫃台").select_option(DESK)
        page.get_by_role("button", name="登入").click()
        # Register a resident (ROC birth date), then find her: masked in the results.
        page.get_by_role("link", name="縣民", exact=True).click()
        page.get_by_role("link", name="新增縣民資料").click()
        page.get_by_label("姓名").fill("李春花")
        page.get_by_label("身分證或居留證統一編號").fill(person)
        page.get_by_label("出生日期").fill("45/03/08")
        page.get_by_label("戶籍鄉鎮").select_option("金湖鎮")
        page.get_by_role("button", name="登錄").click()
        assert person not in page.get_by_test_id("created").inner_text()
        page.get_by_role("link", name="縣民", exact=True).click()
        page.get_by_label("姓名或身分證統一編號").fill(person)
        page.get_by_role("button", name="查詢").click()
        assert person not in page.content()
        screenshot(page, "search")
        page.get_by_role("button", name="開啟資料： 李春花").click()
        # Apply: a student card is refused with the rule in words; a senior card is granted.
        page.get_by_label("卡別").select_option("student")
        page.get_by_role("button", name="申請", exact=True).click()
        assert "學生卡需要有效的在學證明" in page.get_by_test_id("refusal").inner_text()
        page.get_by_label("卡別").select_option("senior")
        page.get_by_role("button", name="申請", exact=True).click()
        page.get_by_role("button", name="於讀卡機製卡").click()
        page.get_by_role("button", name="交付卡片").click()
        screenshot(page, "resident")
        # Top up; the receipt, and only the receipt, prints.
        page.get_by_label("現金加值（新臺幣）").fill("300")
        page.get_by_role("button", name="加值", exact=True).click()
        receipt = page.get_by_test_id("receipt")
        assert "NT$300" in receipt.get_by_test_id("amount").inner_text()
        assert "****" in receipt.get_by_test_id("card").inner_text()
        screenshot(page, "receipt")
        page.emulate_media(media="print")
        assert not page.get_by_role("button", name="列印").is_visible()
        assert receipt.is_visible()
        page.emulate_media(media="screen")
        # Lost, replaced on the reader (the balance carried over), closed with the refund.
        page.get_by_role("button", name="回到縣民資料").click()
        page.get_by_role("button", name="掛失").click()
        assert "已掛失卡片" in page.get_by_test_id("notice").inner_text()
        page.get_by_label("補發原因").select_option("lost")
        page.get_by_role("button", name="於讀卡機補發").click()
        assert "NT$300" in page.get_by_test_id("notice").inner_text()
        page.get_by_role("button", name="結清並退還現金").click()
        assert "NT$300" in page.get_by_test_id("notice").inner_text()
        screenshot(page, "closed")
        # A water bill from its slip, paid from a mobile card.
        page.get_by_role("link", name="代收帳單").click()
        for n, value in enumerate(bill["barcodes"], start=1):
            page.get_by_label(f"繳費單第 {n} 段條碼").fill(value)
        page.get_by_role("button", name="查詢").click()
        page.get_by_label("縣民行動卡卡號").fill(mobile["card_number"])
        page.get_by_role("button", name="以卡片餘額繳費").click()
        assert "NT$386" in page.get_by_test_id("paid-amount").inner_text()
        screenshot(page, "bill-paid")
        page.get_by_role("button", name="登出").click()
        # The supervisor's drawer report: the clerk's cash in, a count, the difference kept.
        page.get_by_label("帳號").fill("t.supervisor")
        page.get_by_label("密碼").fill(PASSWORD)
        page.get_by_label("櫃台").select_option(DESK)
        page.get_by_role("button", name="登入").click()
        page.get_by_role("link", name="錢箱").click()
        row = page.locator(f'tr[data-desk="{DESK}"]')
        row.get_by_label(f"櫃台實點現金 {DESK}").fill("0")
        row.get_by_role("button", name="登錄點鈔").click()
        assert page.locator(f'tr[data-desk="{DESK}"]').get_by_test_id(
            "difference").inner_text().startswith("-")
        screenshot(page, "drawers")
        browser.close()


def test_lost_replace_and_close_with_refund(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    _rt, client = sim_counter
    login(client, "clerk")
    h = f.holder(clerk, age=45)
    page = open_resident(client, h["id"])
    token = csrf_of(page)
    common = {"purpose": "counter service", "csrf": token}
    page = client.post(f"/counter/residents/{h['id']}/apply",
                       data={"product": "general", **common}).text
    card_id = int(re.search(r'/counter/cards/(\d+)/issue', page).group(1))  # type: ignore[union-attr]
    client.post(f"/counter/cards/{card_id}/issue", data=common)
    page = client.post(f"/counter/cards/{card_id}/hand-over", data=common).text
    idem = form_field(page, f"/counter/cards/{card_id}/top-up", "idem")
    client.post(f"/counter/cards/{card_id}/top-up", data={"amount": "800", "idem": idem,
                                                          **common})
    lost = client.post(f"/counter/cards/{card_id}/lost", data=common)
    assert "已掛失卡片" in lost.text and "掛失中" in lost.text
    idem = form_field(lost.text, f"/counter/cards/{card_id}/replace", "idem")
    form = {"reason": "lost", "idem": idem, **common}
    replaced = client.post(f"/counter/cards/{card_id}/replace", data=form)
    again = client.post(f"/counter/cards/{card_id}/replace", data=form)  # sent twice
    assert "已補發" in replaced.text and "NT$800" in replaced.text
    assert again.status_code == 200
    cards = clerk.ok("GET", f"/cardholders/{h['id']}/cards")
    live = [c for c in cards if c["status"] == "active"]
    assert len(cards) == 2 and len(live) == 1  # one replacement, however often sent
    new_id = live[0]["id"]
    assert "fee NT$100" in replaced.text  # paid in cash: the balance moves whole
    assert clerk.ok("GET", f"/cards/{new_id}/purse")["balance"] == 800
    page = open_resident(client, h["id"])
    idem = form_field(page, f"/counter/cards/{new_id}/close", "idem")
    closed = client.post(f"/counter/cards/{new_id}/close", data={"idem": idem, **common})
    assert "已結清" in closed.text and "NT$800" in closed.text
    assert clerk.ok("GET", f"/cards/{new_id}")["status"] == "closed"


def test_a_water_bill_paid_at_the_counter(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    bill = water_bill(clerk, "A1234567", "WB00012345678901", 350, "陳志明")
    _key, card = f.mobile_card(clerk, "android-counter-0001", 1_000)
    login(counter, "clerk")
    token = csrf_of(counter.get("/counter/bills").text)
    seg1, seg2, seg3 = bill["barcodes"]
    wrong = counter.post("/counter/bills", data={"segment1": seg1, "segment2": seg2,
                                                 "segment3": seg3[:-1] + "9", "csrf": token})
    assert wrong.status_code == 422 and "第 3 段條碼有誤" in wrong.text
    found = counter.post("/counter/bills", data={"segment1": seg1, "segment2": seg2,
                                                 "segment3": seg3, "csrf": token})
    assert found.status_code == 200 and "NT$350" in found.text
    idem = form_field(found.text, f"/counter/bills/{bill['id']}/pay", "idem")
    form = {"card_number": card["card_number"], "idem": idem, "csrf": token}
    paid = counter.post(f"/counter/bills/{bill['id']}/pay", data=form)
    again = counter.post(f"/counter/bills/{bill['id']}/pay", data=form)  # a reload
    assert paid.status_code == again.status_code == 200 and "帳單已繳" in paid.text
    assert clerk.ok("GET", f"/cards/{card['id']}/purse")["balance"] == 650  # paid once
    page = open_resident(counter, card["cardholder_id"])  # on the resident's page
    bills = page[page.index('data-testid="bills"'):]
    assert bill["bill_number"] in bills[:400] and "NT$350" in bills[:400]


def test_unpaid_bills_of_the_residents_accounts(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    first = water_bill(clerk, "A7654321", "WB00012345678902", 420, "陳志明")
    _key, card = f.mobile_card(clerk, "android-counter-0002", 2_000)
    login(counter, "clerk")
    page = open_resident(counter, card["cardholder_id"])
    token = csrf_of(page)
    unpaid = page[page.index('data-testid="unpaid"'):]
    assert first["bill_number"] not in unpaid[:300]  # no account known for them yet
    common = {"purpose": "counter service", "csrf": token}
    bad = counter.post(f"/counter/residents/{card['cardholder_id']}/bills",
                       data={"account": "a 1", **common})
    assert bad.status_code == 422 and "用戶號碼為 4 至 20 個英文字母" in bad.text
    looked = counter.post(f"/counter/residents/{card['cardholder_id']}/bills",
                          data={"account": " a7654321 ", **common})  # typed off the slip
    unpaid = looked.text[looked.text.index('data-testid="unpaid"'):]
    assert first["bill_number"] in unpaid[:600] and "NT$420" in unpaid[:600]
    idem = form_field(looked.text, f"/counter/bills/{first['id']}/pay", "idem")
    paid = counter.post(f"/counter/bills/{first['id']}/pay", data={
        "card_number": card["card_number"], "idem": idem, "csrf": token})
    assert "帳單已繳" in paid.text
    r = clerk.client.post(f"/billers/{first['biller_id']}/bills/import", content=bills_csv(
        ("A7654321", "WB00012345678903", "1601", "380",
         (dt.date.today() + dt.timedelta(days=20)).isoformat(), "陳志明")),
        headers={**clerk.headers, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    # Next month's bill of the account the resident paid from their card shows by itself.
    page = open_resident(counter, card["cardholder_id"])
    unpaid = page[page.index('data-testid="unpaid"'):]
    assert "WB00012345678903" in unpaid[:600] and "NT$380" in unpaid[:600]
    assert first["bill_number"] not in unpaid[:600]  # paid: no longer open


def test_carrier_bound_and_unbound(counter: TestClient, clerk, auditor) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    login(counter, "clerk")
    page = open_resident(counter, h["id"])
    assert "尚未歸戶至手機條碼" in page
    common = {"purpose": "counter service", "csrf": csrf_of(page)}
    bound = counter.post(f"/counter/cards/{card['id']}/carrier/bind",
                         data={"mobile_barcode": "/abc+123", **common})
    assert bound.status_code == 200 and "載具已歸戶至手機條碼" in bound.text
    carrier = bound.text[bound.text.index('data-testid="carrier"'):][:300]
    assert "/ABC+123" in carrier and "已歸戶至手機條碼" in carrier
    other = counter.post(f"/counter/cards/{card['id']}/carrier/bind",
                         data={"mobile_barcode": "/XYZ.789", **common})
    refusal = other.text[other.text.index('data-testid="refusal"'):][:400]
    assert other.status_code == 409 and "載具已歸戶至手機條碼" in refusal  # title in Chinese
    assert "/ABC+123" in refusal  # the service's detail, in small print
    bad = counter.post(f"/counter/cards/{card['id']}/carrier/bind",
                       data={"mobile_barcode": "ABC1234", **common})
    assert bad.status_code == 422 and "不是有效的手機條碼" in bad.text
    events = auditor.ok("GET", "/audit/events", action="einvoice.bind")
    assert [e["target_id"] for e in events] == [str(card["id"])]
    assert "/ABC+123" not in str(events) and "/A*****3" in str(events)  # masked in the trail
    unbound = counter.post(f"/counter/cards/{card['id']}/carrier/unbind", data=common)
    assert "載具已取消歸戶" in unbound.text and "尚未歸戶至手機條碼" in unbound.text


def test_who_saw_my_data_printed_at_the_counter(counter: TestClient, clerk, auditor) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    login(counter, "clerk")
    page = open_resident(counter, h["id"])  # a read for "counter service"
    printed = counter.post(f"/counter/residents/{h['id']}/access-log",
                           data={"purpose": "counter service", "csrf": csrf_of(page)})
    assert printed.status_code == 200 and "個人資料查閱紀錄" in printed.text
    assert "t.clerk" in printed.text and "counter service" in printed.text
    assert h["_person_id"] not in printed.text and h["person_id_masked"] in printed.text
    logs = auditor.ok("GET", "/audit/events", action="audit.access_log")
    assert [e["target_id"] for e in logs] == [str(h["id"])]


def test_the_access_review_links_each_flag_to_its_audit_rows(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    clerk.ok("GET", f"/cardholders/{h['id']}", purpose="counter service", reveal="true")
    login(counter, "auditor")
    review = counter.get("/counter/review")
    assert review.status_code == 200 and "個資存取稽核" in review.text
    reveal = review.text[review.text.index('data-section="full_id_reveal"'):]
    link = re.search(r'href="(/counter/audit/events\?before_id=(\d+)&amp;limit=1)"', reveal)
    assert link is not None
    row = counter.get(link.group(1).replace("&amp;", "&"))
    assert row.status_code == 200
    cells = re.findall(r"<tr><td>(\d+)</td>", row.text)
    assert cells == [str(int(link.group(2)) - 1)]  # exactly the flagged row
    assert "cardholder.read" in row.text and "t.clerk" in row.text
    counter.cookies.clear()
    login(counter, "clerk")
    assert counter.get("/counter/review").status_code == 403


def test_the_end_of_day_drawer_report_keeps_differences(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    card = f.active_card(clerk, h["id"])
    clerk.ok("POST", f"/cards/{card['id']}/topups", {"amount": 1_000, "counter": DESK},
             key=f.key())
    login(counter, "supervisor")
    page = counter.get("/counter/drawers").text
    row = page[page.index(f'data-desk="{DESK}"'):]
    expected = int(re.findall(r"<td>([\d,]+)</td>", row)[2].replace(",", ""))
    assert expected >= 1_000
    token = csrf_of(page)
    out = counter.post(f"/counter/drawers/{DESK}/count",
                       data={"counted": str(expected - 100), "note": "short by a note",
                             "csrf": token})
    assert out.status_code == 200
    row = out.text[out.text.index(f'data-desk="{DESK}"'):]
    assert "-100" in row and "short by a note" in row
    again = counter.get("/counter/drawers").text  # kept
    assert "short by a note" in again


def test_statistics_with_chart_and_csv(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    f.active_card(clerk, f.holder(clerk)["id"])
    login(counter, "supervisor")
    page = counter.get("/counter/statistics")
    assert page.status_code == 200 and "<svg" in page.text and "發卡統計" in page.text
    csv_r = counter.get("/counter/statistics.csv")
    assert csv_r.headers["content-type"].startswith("text/csv")
    lines = csv_r.text.splitlines()
    assert lines[0] == "product,status,township,cards" and len(lines) >= 2
    counter.cookies.clear()
    login(counter, "clerk")
    assert counter.get("/counter/statistics").status_code == 403


def test_the_auditor_reads_the_trail_and_its_verdict(counter: TestClient, clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    login(counter, "auditor")
    page = counter.get("/counter/audit")
    assert page.status_code == 200 and "雜湊鏈完整" in page.text
    assert f"cardholder {h['id']}" in page.text and "cardholder.register" in page.text
    assert h["_person_id"] not in page.text  # never a full national ID
    assert counter.get("/counter/residents/new").status_code == 403  # read-only


def test_a_supervisor_blocks_and_unblocks(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    _rt, client = sim_counter
    card = f.active_card(clerk, f.holder(clerk)["id"])
    login(client, "supervisor")
    page = open_resident(client, card["cardholder_id"])
    token = csrf_of(page)
    common = {"purpose": "counter service", "csrf": token, "reason": "suspected misuse"}
    blocked = client.post(f"/counter/cards/{card['id']}/block", data=common)
    assert "已停用卡片" in blocked.text and clerk.ok("GET", f"/cards/{card['id']}")[
        "status"] == "blocked"
    unblocked = client.post(f"/counter/cards/{card['id']}/unblock", data=common)
    assert "已解除停用卡片" in unblocked.text
    client.cookies.clear()
    login(client, "clerk")
    assert client.post(f"/counter/cards/{card['id']}/block", data=common).status_code == 403


def test_proofs_recorded_on_the_page_make_a_card_possible(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from cardsvc.roc import ROC_OFFSET
    _rt, client = sim_counter
    login(client, "clerk")
    h = f.holder(clerk, age=16)
    page = open_resident(client, h["id"])
    common = {"purpose": "card application", "csrf": csrf_of(page)}
    later = dt.date.today() + dt.timedelta(days=200)
    roc = f"{later.year - ROC_OFFSET}/{later.month:02d}/{later.day:02d}"
    bad = client.post(f"/counter/residents/{h['id']}/enrolments",
                      data={"school": "金門高中", "valid_until": "someday", **common})
    assert bad.status_code == 422 and "115/12/06" in bad.text
    ok = client.post(f"/counter/residents/{h['id']}/enrolments",
                     data={"school": "金門高中", "valid_until": roc, **common})
    assert "已登錄在學證明" in ok.text and "金門高中" in ok.text
    applied = client.post(f"/counter/residents/{h['id']}/apply",
                          data={"product": "student", **common})
    assert applied.status_code == 200 and "已申請" in applied.text
    job = client.post(f"/counter/residents/{h['id']}/employments", data={
        "employer": "金城鎮公所", "employer_kind": "township_office",
        "valid_until": later.isoformat(), **common})
    assert "已登錄任職證明" in job.text and "鄉鎮公所" in job.text


def test_the_residents_page_shows_library_links_invoices_and_points(counter: TestClient,
                                                                      clerk, admin) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from tests.support import libraries
    lib = libraries.register(admin, f"KM{uuid.uuid4().hex[:4].upper()}")
    h, _card = libraries.resident_with_card(clerk)
    libraries.link(clerk, h["id"], lib)
    login(counter, "clerk")
    page = open_resident(counter, h["id"])
    links = page[page.index('data-testid="links"'):]
    assert lib["name"] in links[:600] and "KMP" in links[:600]
    assert 'data-testid="points">0' in page and 'data-testid="invoices">發票: 0' in page


def test_only_a_supervisor_waives_the_replacement_fee(sim_counter, clerk) -> None:  # type: ignore[no-untyped-def]
    _rt, client = sim_counter
    card = f.active_card(clerk, f.holder(clerk)["id"])
    clerk.ok("POST", f"/cards/{card['id']}/suspend", {"kind": "lost", "reason": "lost"})
    login(client, "clerk")
    page = open_resident(client, card["cardholder_id"])
    assert 'value="waived"' not in page  # not offered to a clerk
    form = {"reason": "lost", "fee_payment": "waived", "purpose": "counter service",
            "csrf": csrf_of(page),
            "idem": form_field(page, f"/counter/cards/{card['id']}/replace", "idem")}
    refused = client.post(f"/counter/cards/{card['id']}/replace", data=form)
    assert refused.status_code == 422 and "supervisor" in refused.text  # nor taken from one
    client.cookies.clear()
    login(client, "supervisor")
    page = open_resident(client, card["cardholder_id"])
    assert 'value="waived"' in page
    form["csrf"] = csrf_of(page)
    done = client.post(f"/counter/cards/{card['id']}/replace", data=form)
    assert done.status_code == 200 and "fee NT$0" in done.text


def test_no_reader_is_a_clear_message_and_nothing_is_issued(runtime_factory, clerk) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(reader="none")
    with unit_of_work(rt.sessions) as db:
        if DESK not in {d.code for d in staff_service.desks(db)}:
            staff_service.add_desk(db, Actor.system("tests"), DESK, "金城櫃台 1")
    h = f.holder(clerk)
    app = clerk.ok("POST", "/cards/applications", {"cardholder_id": h["id"],
                                                   "product": "general"}, status=201)
    with TestClient(create_app(rt), raise_server_exceptions=False,
                    follow_redirects=False) as client:
        login(client, "clerk")
        page = open_resident(client, h["id"])
        r = client.post(f"/counter/cards/{app['id']}/issue",
                        data={"purpose": "counter service", "csrf": csrf_of(page)})
    assert r.status_code == 503 and "讀卡機沒有回應" in r.text
    assert clerk.ok("GET", f"/cards/{app['id']}")["status"] == "applied"


def test_link_a_library_print_the_consent_and_redeem_points(counter: TestClient, clerk,
                                                             admin, supervisor, rt) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from cardsvc.points import service as points
    from tests.support import libraries
    lib = libraries.register(admin, f"KM{uuid.uuid4().hex[:4].upper()}",
                             optional=["name", "phone"])
    h, _card = libraries.resident_with_card(clerk)
    reward = supervisor.ok("POST", "/rewards", {"name": "金門縣民環保袋", "points": 30,
                                                "stock": 5}, status=201)
    with unit_of_work(rt.sessions) as db:
        points.award(rt.ctx(db, Actor.system("tests")), h["id"], 100, f"test-{h['id']}",
                     "a county event")
    login(counter, "clerk")
    page = open_resident(counter, h["id"])
    common = {"purpose": "counter service", "csrf": csrf_of(page)}
    refused = counter.post(f"/counter/residents/{h['id']}/library-links",
                           data={"library_id": lib["id"], "shared": ["email"], **common})
    assert refused.status_code == 422  # a field this library is not to receive
    linked = counter.post(f"/counter/residents/{h['id']}/library-links",
                          data={"library_id": lib["id"], "shared": ["name"], **common})
    assert linked.status_code == 200 and "已連結" in linked.text
    link_id = int(re.search(r'/counter/library-links/(\d+)/consent', linked.text).group(1))  # type: ignore[union-attr]
    consent = counter.get(f"/counter/library-links/{link_id}/consent")
    assert consent.status_code == 200 and lib["name"] in consent.text
    idem = form_field(linked.text, f"/counter/residents/{h['id']}/redeem", "idem")
    form = {"item_id": reward["id"], "quantity": "2", "idem": idem, **common}
    first = counter.post(f"/counter/residents/{h['id']}/redeem", data=form)
    again = counter.post(f"/counter/residents/{h['id']}/redeem", data=form)  # a reload
    assert "已兌換" in first.text and again.status_code == 200
    assert 'data-testid="points">40' in again.text  # 100 - 2 x 30, once
    unlinked = counter.post(f"/counter/library-links/{link_id}/unlink", data=common)
    assert "已解除連結" in unlinked.text
