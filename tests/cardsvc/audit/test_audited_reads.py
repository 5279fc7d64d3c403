"""The API's reads of one resident's cards, purse, invoices and library links are in the
audit trail, so the resident's access log (個資查詢) lists them, and another resident's does
not."""

from __future__ import annotations

from tests.support import libraries as lib


def test_every_api_read_of_a_residents_records_is_in_their_access_log(clerk, admin) -> None:  # type: ignore[no-untyped-def]
    holder, card = lib.resident_with_card(clerk)
    other, other_card = lib.resident_with_card(clerk)
    library = lib.register(admin, "KMTEST")
    link = lib.link(clerk, holder["id"], library)
    reads = [f"/cards/{card['id']}", f"/cards/by-number/{card['card_number']}",
             f"/cards/{card['id']}/card-loads", f"/cardholders/{holder['id']}/cards",
             f"/cards/eligibility?cardholder_id={holder['id']}&product=general",
             f"/cards/{card['id']}/events", f"/cards/{card['id']}/purse",
             f"/cardholders/{holder['id']}/invoices",
             f"/cardholders/{holder['id']}/library-links",
             f"/library-links/{link['id']}/consent"]
    for path in reads:
        assert clerk.get(path).status_code == 200, path
    clerk.ok("GET", f"/cards/{other_card['id']}/purse")
    log = clerk.ok("GET", f"/audit/cardholders/{holder['id']}/access-log",
                   purpose="the resident asked")
    seen = [(e["action"], e["by"]) for e in log["entries"]]
    for action in ("card.read", "card.loads_read", "cardholder.cards_read",
                   "cardholder.eligibility_read",
                   "card.history_read", "card.purse_read", "einvoice.invoices_read",
                   "library.links_read", "library.consent_read"):
        assert (action, "t.clerk") in seen, action
    others = clerk.ok("GET", f"/audit/cardholders/{other['id']}/access-log",
                      purpose="the resident asked")
    assert [e["action"] for e in others["entries"]].count("card.purse_read") == 1
    assert not any(e["action"] == "library.links_read" for e in others["entries"])
