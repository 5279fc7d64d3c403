"""The demo's events chapter: an organiser publishes an event with a draw (its commitment
public before anyone checks in), residents check in with their chips and a phone, a cloned
chip is refused, the list freezes, the draw picks the winner, the published record is
verified as `cardsvc draw verify` does, and points are redeemed at the counter."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from cardsvc.app.station import CheckinStation
from cardsvc.app.story import DemoFailed, Story
from cardsvc.events import drawrule
from cardsvc.events.service import make_phone_token
from cardsvc.runtime import Runtime
from readers import protocol as p
from readers.memory import InProcessReader
from readers.session import CardSession, personalise
from simulators.card import VirtualCard


def _on_reader(rt: Runtime, card: dict[str, Any]) -> InProcessReader:
    path = rt.settings.sim_cards_dir / f"{card['chip_uid']}.json"
    return InProcessReader(VirtualCard(bytes.fromhex(card["chip_uid"]), path))


def _clone_of(card: dict[str, Any], directory: Path) -> InProcessReader:
    """A copy of the card's UID and number on a chip with keys of the copier's own."""
    uid = bytes.fromhex(card["chip_uid"])
    clone = VirtualCard(uid, directory / "clone.json")
    session = CardSession(InProcessReader(clone), b"CLONE")
    session.select()
    personalise(session, p.CardInfo(card["card_number"], "general", dt.date(2035, 12, 31)),
                {purpose: (1, secrets.token_bytes(16)) for purpose in p.KeyPurpose})
    return InProcessReader(clone)


def chapter(st: Story, rt: Runtime, chips: dict[str, dict[str, Any]],
            mobile: dict[str, Any], phone_private: Any, general_holder: int,
            admin_password: str) -> None:
    st.step("County events: check-in with the card, points, a draw anyone can verify")
    st.login("admin", admin_password)
    st.call("POST", "/staff", {"username": "org.chen", "role": "organiser",
                               "display_name": "陳科員", "department": "文化局",
                               "password": "org.chen-Passw0rd"}, expect=201)
    st.login("org.chen", "org.chen-Passw0rd")
    now = dt.datetime.now(dt.UTC)
    event = st.call("POST", "/events", {
        "title": "金門縣民健走暨簽到抽獎", "venue": "金城鎮 莒光樓",
        "starts_at": now.isoformat(), "ends_at": (now + dt.timedelta(hours=3)).isoformat(),
        "checkin_opens": now.isoformat(),
        "checkin_closes": (now + dt.timedelta(hours=2)).isoformat(),
        "points": 20, "prizes": 1, "prize_description": "金門高粱禮盒"}, expect=201)
    event = st.call("POST", f"/events/{event['id']}/publish")
    st.say(f"文化局's organiser publishes event {event['id']} 「{event['title']}」 with one "
           f"prize; the draw's commitment is public before anyone checks in: "
           f"[bold]{event['commitment'][:24]}…[/]")

    station = CheckinStation(st.client, st.token or "", event["id"], "莒光樓-1")
    for who, card in chips.items():
        tap = station.tap_card(_on_reader(rt, card))
        if tap.status != "checked_in":
            raise DemoFailed(f"{who}'s check-in refused: {tap.code} {tap.detail}")
        st.say(f"{who} taps the card at the station (it holds no key; the server checks the "
               f"card's answer) → ticket [bold]{tap.ticket}[/], +{tap.points} points")
    tap = station.scan_phone(make_phone_token(phone_private, mobile["card_number"],
                                              event["id"], time.time()))
    if tap.status != "checked_in":
        raise DemoFailed(f"the phone's check-in refused: {tap.code}")
    st.say(f"張家豪 shows his phone's signed check-in code → ticket [bold]{tap.ticket}[/]")
    with tempfile.TemporaryDirectory() as tmp:
        clone = station.tap_card(_clone_of(next(iter(chips.values())), Path(tmp)))
    if clone.code != "checkin_card_not_genuine":
        raise DemoFailed(f"a cloned chip was not refused: {clone}")
    st.say(f"a chip with a copied UID and card number taps → [yellow]{clone.code}[/]")

    frozen = st.call("POST", f"/events/{event['id']}/freeze")
    st.say(f"check-in closes; the list of tickets freezes: Merkle root "
           f"[bold]{frozen['merkle_root'][:24]}…[/]")
    drawn = st.call("POST", f"/events/{event['id']}/draw",
                    {"public_value": "次日大樂透 05 11 23 30 41 47"})
    record = st.call("GET", f"/public/events/{event['id']}/draw")
    st.say(f"the draw reveals the seed and mixes in the next day's lottery numbers → winner "
           f"[bold]{drawn[0]['ticket']}[/], who is notified")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "draw.json"
        path.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        problems = drawrule.verify(json.loads(path.read_text(encoding="utf-8")))
    if problems:
        raise DemoFailed(f"the published draw does not verify: {problems}")
    st.say(f"`cardsvc draw verify draw.json` on the public record (no database, no keys): "
           f"[green]OK[/], {len(record['tickets'])} tickets, the seed matches the commitment, "
           "the winner follows from the rule")

    st.login("sup.wu", "sup.wu-Passw0rd")
    bag = st.call("POST", "/rewards", {"name": "金門縣民環保袋", "points": 15, "stock": 50},
                  expect=201)
    st.login("clerk.lin", "clerk.lin-Passw0rd")
    out = st.call("POST", f"/cardholders/{general_holder}/points/redemptions",
                  {"item_id": bag["id"], "quantity": 1}, key=f"demo-{secrets.token_hex(8)}")
    st.say(f"陳志明 redeems 15 points for a {bag['name']} at the counter → "
           f"{out['balance']} points left (points never become purse money)")

