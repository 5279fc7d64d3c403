"""The `cardsvc` command as an operator uses it: first start, demo, seed, reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.net import free_port

CLI = [sys.executable, "-m", "cardsvc.app.cli"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    full_env.update(env or {}, COLUMNS="200")
    return subprocess.run(CLI + args, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_first_start_creates_database_keys_and_admin(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARDSVC_")}
    env["COLUMNS"] = "200"
    proc = subprocess.Popen([*CLI, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.time() + 60
        password = None
        assert proc.stdout is not None
        while time.time() < deadline and password is None:
            line = proc.stdout.readline()
            lines.append(line)
            m = re.search(r"password: (\S+)", line)
            if m:
                password = m.group(1)
        assert password, "".join(lines)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.post(f"{base}/auth/login", json={"username": "admin", "password": password})
        assert r.status_code == 200 and r.json()["role"] == "admin"
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = httpx.post(f"{base}/staff", headers=admin, json={
            "username": "clerk.one", "role": "clerk", "password": "clerk-password-1"})
        assert r.status_code == 201
        r = httpx.post(f"{base}/auth/login", json={"username": "clerk.one",
                                                   "password": "clerk-password-1"})
        clerk = {"Authorization": f"Bearer {r.json()['access_token']}"}
        pid = "A123456789"
        r = httpx.post(f"{base}/cardholders", headers=clerk, json={
            "name": "日誌測試", "person_id": pid, "birth_date": "1970-01-01",
            "township": "金城鎮", "phone": "0911222333"})
        assert r.status_code == 201, r.text
        r = httpx.post(f"{base}/cardholders/search", headers=clerk,
                       json={"purpose": "log check", "person_id": pid})
        assert r.status_code == 200 and len(r.json()) == 1
        # A chip card issued on the (simulated) counter reader, then a shop's terminal.
        holder_id = r.json()[0]["id"]
        app = httpx.post(f"{base}/cards/applications", headers=clerk,
                         json={"cardholder_id": holder_id, "product": "general"}).json()
        card = httpx.post(f"{base}/cards/{app['id']}/issue", headers=clerk, json={}).json()
        httpx.post(f"{base}/cards/{app['id']}/activate", headers=clerk)
        httpx.post(f"{base}/cards/{app['id']}/topups", json={"amount": 100},
                   headers={**clerk, "Idempotency-Key": "first-start-topup-1"})
        m = httpx.post(f"{base}/merchants", headers=clerk, json={
            "legal_name": "金門縣立體育場", "tax_id": "10458575", "category": "government",
            "fee_bps": 0, "bank_account": "004-00011122233"}).json()
        t = httpx.post(f"{base}/merchants/{m['id']}/terminals", headers=clerk,
                       json={"label": "Gate"}).json()
        assert run(["keys", "terminal-export", "--out", "keys.json"], tmp_path).returncode == 0
        (tmp_path / "pos.json").write_text(json.dumps({
            "api": base, "key_id": t["key_id"], "secret": t["secret"], "terminal_id": t["id"],
            "keys": str(tmp_path / "keys.json"), "state": str(tmp_path / "pos-state.json"),
            "reader": f"sim:{tmp_path / 'sim-cards' / (card['chip_uid'] + '.json')}",
            "invoices": {"seller_tax_id": "10458575", "track": "KM", "first": 1, "last": 9}}))
        tap = run(["sim", "pos", "tap", "--profile", "pos.json", "--amount", "30"], tmp_path)
        assert tap.returncode == 0 and "accepted" in tap.stdout, tap.stdout + tap.stderr
        assert "invoice KM00000001 (reported)" in tap.stdout, tap.stdout
        hot = run(["sim", "pos", "hotlist", "--profile", "pos.json"], tmp_path)
        assert hot.returncode == 0 and "version" in hot.stdout
        secrets = tmp_path / "cardsvc-secrets.json"
        assert (tmp_path / "cardsvc.db").exists()
        assert secrets.stat().st_mode & 0o777 == 0o600
        assert password not in secrets.read_text()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    log = "".join(lines) + out
    assert "POST /cardholders/search 200" in log  # requests are logged ...
    assert "A123456789" not in log and "0911222333" not in log  # ... without personal data
    # A second start reuses everything and prints no new password.
    again = run(["staff", "list"], tmp_path)
    assert again.returncode == 0 and "admin" in again.stdout and "password" not in again.stdout


def test_demo_tells_the_whole_counter_story(tmp_path: Path) -> None:
    r = run(["demo"], tmp_path)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    for expected in ("logged in as clerk", "refused, rule senior.age_or_disability",
                     "concession=disability", "concession=companion", "concession=student",
                     "mobile", "balance NT$500", "charged once", "carried over",
                     "pay out NT$300 in cash", "Cards issued", "audit verify: chain intact",
                     "certificate → accepted", "refuses it (card_hotlisted)",
                     "shows a QR code", "qr_token_spent", "refunds NT$20",
                     "uploaded as batch", "The day's clearing", "settled, 11 records",
                     "李秀英 taps: pays NT$0 of NT$30 — senior concession: free fare",
                     "王小華 taps: pays NT$15 of NT$30 — student concession: student fare",
                     "陳志明 taps: pays NT$30 of NT$30 — full fare",
                     "full fare (profile updated at this tap)",
                     "payout.xml", "imports 2 bills", "a mistyped slip: bad_barcode, segment 3",
                     "pays NT$386 from his mobile card", "bill_already_paid",
                     "checked by anyone: valid=True", "Remitted to billers",
                     "remittance-KMWATER.csv"):
        assert expected in out, f"{expected!r} missing from the demo"
    # The clearing report: the two shops' nets (NT$155 - 20, NT$60 - 1.5% fee) and the bus
    # operator's takings (75) with its subsidy claims (105: three free rides and a student's).
    tail = out[out.index("The day's clearing"):]
    assert "│ 135 │" in tail and "│  59 │" in tail and "│ 180 │" in tail and "374" in tail
    assert "│     105 │" in tail
    # Then the month's statement names each programme's amount.
    statement = out[out.index("subsidy statement"):]
    assert "社會處 敬老愛心搭乘補助" in statement and "教育處 學生乘車補助" in statement
    assert "│      90 │" in statement and "│      15 │" in statement
    # It ends with the day's signed audit checkpoint, checked with the public key alone.
    ending = out[out.index("The day's signed audit checkpoint"):]
    assert re.search(r"wrote \S+/checkpoints/audit-checkpoint-\d{4}-\d\d-\d\d\.json .*: rows "
                     r"1\.\.\d+, Merkle root [0-9a-f]{64}, signed with key s\d+", ending), ending
    assert "checkpoint verified with the public key only" in ending
    assert re.search(r"row \d+ \(money\.topup\) proved to be in the signed trail", ending)
    assert list(tmp_path.iterdir()) == []  # throw-away: nothing left behind


def test_transit_commands(tmp_path: Path) -> None:
    env = {"CARDSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
           "CARDSVC_SECRETS_FILE": str(tmp_path / "s.json")}
    keys = run(["transit", "public-keys"], tmp_path, env)
    assert keys.returncode == 0, keys.stderr
    first = json.loads(keys.stdout[keys.stdout.index("{"):])
    assert list(first) == ["s1"]
    assert run(["keys", "new-signing-key"], tmp_path, env).returncode == 0
    after = run(["transit", "public-keys"], tmp_path, env).stdout
    assert list(json.loads(after[after.index("{"):])) == ["s1", "s2"]
    bad = run(["transit", "fare-table", "--operator", "9"], tmp_path, env)
    assert bad.returncode == 1 and "no merchant 9" in bad.stdout
    st = run(["transit", "statement", "--month", "2026-12", "--csv", "st.csv", "--chart",
              "st.svg"], tmp_path, env)
    assert st.returncode == 0, st.stdout
    assert (tmp_path / "st.csv").read_text().startswith("programme,programme_name")
    assert (tmp_path / "st.svg").read_text().startswith("<svg")
    assert run(["transit", "statement", "--month", "12/2026"], tmp_path, env).returncode == 1


def test_seed_then_issuance_report(tmp_path: Path, rt) -> None:  # type: ignore[no-untyped-def]
    env = {"CARDSVC_DATABASE_URL": rt.settings.database_url,
           "CARDSVC_SECRETS_FILE": str(rt.settings.secrets_file)}
    r = run(["seed", "--cards", "600"], tmp_path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Seeded 600 cards" in r.stdout
    csv_path = tmp_path / "issuance.csv"
    r = run(["stats", "issuance", "--from", "2017-09-15", "--to", "2018-10-31",
             "--csv", str(csv_path)], tmp_path, env)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = csv_path.read_text(encoding="utf-8-sig").splitlines()
    assert rows[0] == "product,status,township,cards"
    total = sum(int(line.rsplit(",", 1)[1]) for line in rows[1:])
    assert total == 600
    by_product: dict[str, int] = {}
    for line in rows[1:]:
        product, _, _, n = line.split(",")
        by_product[product] = by_product.get(product, 0) + int(n)
    # The county's mix: about 68 % general, 19 % senior, 12.5 % student, 0.6 % mobile.
    assert 380 <= by_product["general"] <= 440 and by_product["mobile"] >= 1
    assert run(["audit", "verify"], tmp_path, env).returncode == 0


def test_db_check_agrees(tmp_path: Path, rt) -> None:  # type: ignore[no-untyped-def]
    r = run(["db", "check"], tmp_path, {"CARDSVC_DATABASE_URL": rt.settings.database_url})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agree" in r.stdout


def test_missing_secrets_in_production_mode_is_an_error(tmp_path: Path) -> None:
    r = run(["staff", "list"], tmp_path, {"CARDSVC_GENERATE_SECRETS": "false"})
    assert r.returncode == 1
    assert "does not exist" in r.stdout


def test_settle_commands(tmp_path: Path) -> None:
    from cardsvc.app import synthetic
    from cardsvc.app.bootstrap import bootstrap
    from cardsvc.config import Settings
    from cardsvc.context import TAIPEI
    rt = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'cardsvc.db'}",
                            secrets_file=tmp_path / "cardsvc-secrets.json")).runtime
    synthetic.records(rt, synthetic.population(rt, 3, 40), 500)
    rt.close()
    day = dt.datetime.now(TAIPEI).date().isoformat()
    r = run(["settle", "report", "--date", day], tmp_path)
    assert r.returncode == 1 and "no clearing window" in r.stdout
    r = run(["settle", "run", "--date", day], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "settled, 500 records" in r.stdout and "exceptions: none" in r.stdout
    r = run(["settle", "report", "--date", day, "--format", "json"], tmp_path)
    summary = json.loads(r.stdout)
    assert summary["records"]["count"] == 500
    r = run(["settle", "report", "--date", day, "--format", "csv", "--out",
             str(tmp_path / "files")], tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("merchant_id,legal_name,sales_count,gross")
    assert sum(int(line.split(",")[3]) for line in lines[1:4]) == summary["totals"]["gross"]
    assert (tmp_path / "files" / "payout.xml").stat().st_mode & 0o777 == 0o600
    future = (dt.datetime.now(TAIPEI).date() + dt.timedelta(days=2)).isoformat()
    r = run(["settle", "close", "--date", future], tmp_path)
    assert r.returncode == 1 and "invalid_input" in r.stdout


def test_messages_stay_one_line_when_nobody_reads_a_terminal(tmp_path: Path) -> None:
    """A service log splits a wrapped line: the first start's password line among them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARDSVC_", "COLUMNS"))}
    r = subprocess.run([*CLI, "staff", "list"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("Generated keys in" in ln and "cannot be read." in ln for ln in lines), r.stdout
    assert any(ln.startswith("  (shown once;") and ln.endswith("`cardsvc staff add`)")
               for ln in lines), r.stdout
    assert any(re.fullmatch(r"  password: \S{12,}", ln) for ln in lines), r.stdout
