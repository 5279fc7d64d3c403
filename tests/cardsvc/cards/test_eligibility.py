"""Eligibility edges, through the counter API: the refusal names the rule that failed."""

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from cardsvc.app.http import create_app
from cardsvc.cards.eligibility import age_on
from tests.support import factories as f
from tests.support.api import PASSWORD, Api


def apply(api, holder_id, product, **extra):  # type: ignore[no-untyped-def]
    return api.post("/cards/applications", {"cardholder_id": holder_id, "product": product,
                                            **extra})


def test_senior_on_the_65th_birthday_is_eligible(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, born=f.years_ago(65))
    r = apply(clerk, h["id"], "senior")
    assert r.status_code == 201, r.text
    assert r.json()["concession"] == "senior"


def test_senior_the_day_before_the_65th_birthday_is_refused(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, born=f.years_ago(65, days=-1))
    r = apply(clerk, h["id"], "senior")
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "ineligible"
    assert body["rule"] == "senior.age_or_disability"
    assert "64" in body["detail"]


def test_senior_age_threshold_is_configurable(runtime_factory) -> None:  # type: ignore[no-untyped-def]
    rt = runtime_factory(senior_min_age=60)
    with TestClient(create_app(rt)) as client:
        token = client.post("/auth/login", json={"username": "t.clerk",
                                                 "password": PASSWORD}).json()["access_token"]
        api = Api(client, token)
        h = f.holder(api, age=61)
        assert apply(api, h["id"], "senior").status_code == 201


def test_student_enrolment_ending_yesterday_is_refused(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=17)
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "金門高中", "valid_until": (f.today() - dt.timedelta(days=1)).isoformat()},
             status=201)
    r = apply(clerk, h["id"], "student")
    assert r.status_code == 422
    assert r.json()["rule"] == "student.enrolment_valid"
    assert "ended" in r.json()["detail"]


def test_student_enrolment_ending_today_is_eligible_and_the_concession_ends_with_it(clerk) -> None:  # type: ignore[no-untyped-def]
    """The concession ends with the enrolment; the card itself keeps the card's validity
    (afterwards its holder pays the full fare until a new enrolment is recorded)."""
    h = f.holder(clerk, age=17)
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "金門高中", "valid_until": f.today().isoformat()}, status=201)
    r = apply(clerk, h["id"], "student")
    assert r.status_code == 201, r.text
    assert r.json()["concession_until"] == f.today().isoformat()
    assert r.json()["expires_on"] > f.today().isoformat()


def test_student_without_enrolment_is_refused(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=17)
    r = apply(clerk, h["id"], "student")
    assert r.json()["rule"] == "student.enrolment_valid"


def test_disability_certificate_gives_the_concession_and_companion_card(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=40)
    companion = f.holder(clerk, age=45)
    bystander = f.holder(clerk, age=45)
    until = f.today() + dt.timedelta(days=90)
    clerk.ok("POST", f"/cardholders/{h['id']}/disability-certificates",
             {"certificate_no": "DC-12345678", "valid_until": until.isoformat(),
              "companion_id": companion["id"]}, status=201)
    own = apply(clerk, h["id"], "senior")
    assert own.status_code == 201 and own.json()["concession"] == "disability"
    assert own.json()["concession_until"] == until.isoformat()
    comp = apply(clerk, companion["id"], "senior")
    assert comp.status_code == 201 and comp.json()["concession"] == "companion"
    assert apply(clerk, bystander["id"], "senior").json()["rule"] == "senior.age_or_disability"


def test_expired_disability_certificate_is_refused(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=40)
    clerk.ok("POST", f"/cardholders/{h['id']}/disability-certificates",
             {"certificate_no": "DC-12345678",
              "valid_until": (f.today() - dt.timedelta(days=1)).isoformat()}, status=201)
    assert apply(clerk, h["id"], "senior").json()["rule"] == "senior.age_or_disability"


def test_general_needs_registration_in_the_county(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, township=None)
    r = apply(clerk, h["id"], "general")
    assert r.status_code == 422 and r.json()["rule"] == "general.registered_in_county"


def test_general_minimum_age(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, born=f.years_ago(7, days=-1))
    assert apply(clerk, h["id"], "general").json()["rule"] == "general.min_age"
    h7 = f.holder(clerk, born=f.years_ago(7))
    assert apply(clerk, h7["id"], "general").status_code == 201


def test_mobile_needs_a_device_binding(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk)
    r = apply(clerk, h["id"], "mobile")
    assert r.status_code == 422 and r.json()["rule"] == "mobile.device_binding"
    bad = apply(clerk, h["id"], "mobile", device_id="phone-123456",
                device_public_key="bm90IGEga2V5")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"


def test_eligibility_check_endpoint_names_the_rule(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=30)
    out = clerk.ok("GET", "/cards/eligibility", cardholder_id=h["id"], product="senior")
    assert out["eligible"] is False and out["rule"] == "senior.age_or_disability"
    out = clerk.ok("GET", "/cards/eligibility", cardholder_id=h["id"], product="general")
    assert out["eligible"] is True


def test_eligibility_rechecked_at_renewal(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    """A student whose enrolment ended cannot renew a student card; the renewal names the
    rule, and a product change to general goes through, balance and all."""
    from sqlalchemy import update

    from cardsvc.cards.models import Card
    from cardsvc.holders.models import Enrolment
    h = f.holder(clerk, age=19)
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "國立金門大學",
              "valid_until": (f.today() + dt.timedelta(days=30)).isoformat()},
             status=201)
    card = f.active_card(clerk, h["id"], "student")
    f.topup(clerk, card["id"], 250)
    with rt.engine.begin() as conn:  # the enrolment ended; the card comes up for renewal
        conn.execute(update(Enrolment).values(valid_until=f.today() - dt.timedelta(days=1)))
        conn.execute(update(Card).where(Card.id == card["id"]).values(
            expires_on=f.today() + dt.timedelta(days=10)))
    r = clerk.post(f"/cards/{card['id']}/replace", {"reason": "renewal", "chip_uid": f.uid()},
                   key=f.key())
    assert r.status_code == 422 and r.json()["rule"] == "student.enrolment_valid"
    assert clerk.ok("GET", f"/cards/{card['id']}")["status"] == "active"  # nothing half-done
    r = clerk.post(f"/cards/{card['id']}/replace", {"reason": "product_change",
                   "product": "general", "chip_uid": f.uid()}, key=f.key())
    assert r.status_code == 200, r.text
    assert r.json()["new_card"]["product"] == "general"
    assert r.json()["new_balance"] == 250 and r.json()["fee"] == 0


def employ(clerk, holder_id: int, until: dt.date, kind: str = "school") -> dict:  # type: ignore[no-untyped-def,type-arg]
    return clerk.ok("POST", f"/cardholders/{holder_id}/employments",
                    {"employer": "金門縣立金城國中", "employer_kind": kind,
                     "valid_until": until.isoformat()}, status=201)


def test_staff_card_needs_a_recorded_employment(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=35)
    r = apply(clerk, h["id"], "staff")
    assert r.status_code == 422 and r.json()["rule"] == "staff.employment_valid"
    assert "employment" in r.json()["detail"]
    employ(clerk, h["id"], f.today() - dt.timedelta(days=1))
    r = apply(clerk, h["id"], "staff")
    assert r.json()["rule"] == "staff.employment_valid" and "ended" in r.json()["detail"]
    until = f.today() + dt.timedelta(days=365)
    employ(clerk, h["id"], until, kind="township_office")
    r = apply(clerk, h["id"], "staff")
    assert r.status_code == 201, r.text
    card = r.json()
    assert (card["product"], card["concession"], card["concession_until"]) == (
        "staff", "staff", until.isoformat())
    assert card["card_number"].startswith("89025")  # the product digit of a staff card
    record = clerk.ok("GET", f"/cardholders/{h['id']}", purpose="counter_service")
    assert [e["employer_kind"] for e in record["employments"]] == ["school",
                                                                   "township_office"]


def test_staff_employment_must_name_a_county_employer(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=35)
    r = clerk.post(f"/cardholders/{h['id']}/employments",
                   {"employer": "某公司", "employer_kind": "private_company",
                    "valid_until": (f.today() + dt.timedelta(days=30)).isoformat()})
    assert r.status_code == 422


def test_staff_card_renewal_rechecks_the_employment(clerk, rt) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from cardsvc.cards.models import Card
    from cardsvc.holders.models import Employment
    h = f.holder(clerk, age=50)
    employ(clerk, h["id"], f.today() + dt.timedelta(days=30))
    card = f.active_card(clerk, h["id"], "staff")
    with rt.engine.begin() as conn:
        conn.execute(update(Employment).where(Employment.cardholder_id == h["id"]).values(
            valid_until=f.today() - dt.timedelta(days=1)))
        conn.execute(update(Card).where(Card.id == card["id"]).values(
            expires_on=f.today() + dt.timedelta(days=10)))
    r = clerk.post(f"/cards/{card['id']}/replace", {"reason": "renewal", "chip_uid": f.uid()},
                   key=f.key())
    assert r.status_code == 422 and r.json()["rule"] == "staff.employment_valid"


def test_a_new_enrolment_moves_the_concession(clerk, auditor) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=17)
    first = f.today() + dt.timedelta(days=20)
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "金門高中", "valid_until": first.isoformat()}, status=201)
    card = f.active_card(clerk, h["id"], "student")
    assert card["concession_until"] == first.isoformat()
    nxt = first + dt.timedelta(days=365)
    clerk.ok("POST", f"/cardholders/{h['id']}/enrolments",
             {"school": "國立金門大學", "valid_until": nxt.isoformat()}, status=201)
    assert clerk.ok("GET", f"/cards/{card['id']}")["concession_until"] == nxt.isoformat()
    changes = auditor.ok("GET", "/audit/events", action="card.concession_change",
                         target_type="card", target_id=str(card["id"]))
    assert [json.loads(c["detail"])["to"] for c in changes] == [nxt.isoformat()]


@pytest.mark.parametrize("birth,on,age", [
    (dt.date(2000, 2, 29), dt.date(2001, 2, 27), 0),
    (dt.date(2000, 2, 29), dt.date(2001, 2, 28), 1),
    (dt.date(2000, 2, 29), dt.date(2004, 2, 29), 4),
    (dt.date(1961, 11, 24), dt.date(2026, 11, 23), 64),
    (dt.date(1961, 11, 23), dt.date(2026, 11, 23), 65),
])
def test_age_on(birth: dt.date, on: dt.date, age: int) -> None:
    assert age_on(birth, on) == age


def test_one_registered_companion(clerk) -> None:  # type: ignore[no-untyped-def]
    h = f.holder(clerk, age=40)
    first, second = f.holder(clerk), f.holder(clerk)
    until = (f.today() + dt.timedelta(days=200)).isoformat()
    clerk.ok("POST", f"/cardholders/{h['id']}/disability-certificates",
             {"certificate_no": "DC-0001", "valid_until": until, "companion_id": first["id"]},
             status=201)
    r = clerk.post(f"/cardholders/{h['id']}/disability-certificates",
                   {"certificate_no": "DC-0002", "valid_until": until,
                    "companion_id": second["id"]})
    assert r.status_code == 409 and r.json()["code"] == "companion_already_registered"
    assert apply(clerk, second["id"], "senior").json()["rule"] == "senior.age_or_disability"
