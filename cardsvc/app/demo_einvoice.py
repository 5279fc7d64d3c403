"""The demo's e-invoice chapter: the shops report the invoices of the day's sales onto the
cards, a resident binds a mobile barcode, the period's draw is imported, the check finds the
planted winners and the report shows them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from cardsvc.app import reports
from cardsvc.app.story import DemoFailed, Story
from cardsvc.einvoice import rules
from cardsvc.einvoice.schemas import PeriodReport
from merchants.pos.client import PosClient

# The draw the demo imports: its first prize is the number the tap's invoice carries, and
# its extra sixth prize the last three digits of the QR payment's.
FIRST, EXTRA_SIXTH = "00507588", "765"


def winning_list(period: int) -> dict[str, str]:
    data = {"invoYm": f"{period:05d}", "superPrizeNo": "12345678", "spcPrizeNo": "87654321",
            "firstPrizeNo1": FIRST, "firstPrizeNo2": "40912336", "firstPrizeNo3": "91286147",
            "sixthPrizeNo1": EXTRA_SIXTH, "superPrizeAmt": "10000000",
            "spcPrizeAmt": "02000000", "firstPrizeAmt": "00200000",
            "secondPrizeAmt": "00040000", "thirdPrizeAmt": "00010000",
            "fourthPrizeAmt": "00004000", "fifthPrizeAmt": "00001000",
            "sixthPrizeAmt": "00000200"}
    data.update({f"firstPrizeNo{n}": "" for n in range(4, 11)})
    data.update({f"sixthPrizeNo{n}": "" for n in range(2, 7)})
    return data


def chapter(st: Story, today: dt.date, sales: list[tuple[PosClient, str, dict[str, Any], str]],
            holder_id: int, mobile: dict[str, Any]) -> None:
    st.step("E-invoices on the card: 歸戶, the draw, every prize checked")
    for client, seller, sale, number in sales:
        r = client.request("POST", "/pos/v1/invoices", {
            "transaction_id": sale["transaction_id"], "invoice_number": number,
            "invoice_date": today.isoformat(), "random_code": "0427",
            "amount": sale["amount"], "seller_tax_id": seller},
            idempotency_key=f"demo-{uuid.uuid4()}")
        if r.status_code != 200:
            raise DemoFailed(f"invoice refused: {r.text}")
        st.say(f"shop {seller} reports invoice {number} (NT${sale['amount']}) onto carrier "
               f"{r.json()['carrier']}")
    st.login("clerk.lin", "clerk.lin-Passw0rd")
    binding = st.call("POST", f"/cards/{mobile['id']}/carrier/binding",
                      {"mobile_barcode": "/KM+2026"})
    st.say(f"張家豪 binds his mobile card's carrier to his phone barcode "
           f"{binding['mobile_barcode']} (歸戶)")
    st.login("sup.wu", "sup.wu-Passw0rd")
    period = rules.period_of(today)
    st.call("POST", "/einvoice/draws", winning_list(period), expect=201)
    st.say(f"the supervisor imports the draw of {rules.period_label(period)} ({period}): "
           f"first prize {FIRST}, extra sixth prize {EXTRA_SIXTH}")
    out = st.call("POST", f"/einvoice/periods/{period}/check")
    st.say(f"the check goes through {out['invoices']} invoices: {out['winners']} winners, "
           f"{out['notified']} residents notified")
    st.c.print(reports.prizes_table(PeriodReport.model_validate(
        st.call("GET", f"/einvoice/periods/{period}/report"))))
    mine = st.call("GET", f"/cardholders/{holder_id}/invoices")
    for win in mine["winnings"]:
        st.say(f"陳志明's invoice {win['invoice_number']} won {win['tier_name']} "
               f"NT${win['amount']:,}: NT${win['net']:,} after tax, to claim "
               f"{win['claim_from']} – {win['claim_until']}")
