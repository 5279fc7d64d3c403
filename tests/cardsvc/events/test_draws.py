"""Draws anyone can verify: the commitment is public before check-in, the list freezes with
a Merkle root each resident can check their ticket against, the draw follows from seed,
public value and list, and the verifier (standard library only, no database, no keys) names
each kind of tampering."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cardsvc.events import drawrule
from tests.support.events import Venue

VERIFIER = Path(drawrule.__file__)


def held_draw(venue: Venue, people: int = 7, prizes: int = 3) -> tuple[dict[str, Any],
                                                                     list[str]]:
    event = venue.event(prizes=prizes)
    public = venue.client.get(f"/public/events/{event['id']}/draw").json()
    assert public["commitment"] == event["commitment"] and len(event["commitment"]) == 64
    assert public["seed"] is None and public["tickets"] is None  # nothing else yet
    station = venue.station(event["id"])
    tickets = [station.tap_card(venue.chip_resident().reader()).ticket for _ in range(people)]
    venue.organiser.ok("POST", f"/events/{event['id']}/freeze")
    venue.organiser.ok("POST", f"/events/{event['id']}/draw",
                       {"public_value": "2026-12-07 威力彩 07 13 21 28 33 38"})
    record = venue.client.get(f"/public/events/{event['id']}/draw").json()
    return record, [t for t in tickets if t]


def verify_file(record: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record, ensure_ascii=False))
    # -I -S: no site packages, no project on the path: the standard library alone.
    return subprocess.run([sys.executable, "-I", "-S", str(VERIFIER), str(path)],
                          capture_output=True, text=True, timeout=30, check=False)


def test_a_published_draw_verifies_with_the_standard_library_alone(venue: Venue,
                                                                   tmp_path: Path) -> None:
    record, tickets = held_draw(venue)
    assert record["tickets"] == sorted(tickets)
    assert hashlib.sha256(bytes.fromhex(record["seed"])).hexdigest() == record["commitment"]
    assert len(record["winners"]) == 3 and set(record["winners"]) <= set(tickets)
    out = verify_file(record, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK: 7 tickets")


@pytest.mark.parametrize(("tamper", "codes"), [
    ("wrong_seed", {"seed_not_committed", "winners_differ"}),
    ("edited_list", {"list_edited", "winners_differ"}),
    ("moved_winner", {"winners_differ"}),
    ("commitment", {"seed_not_committed"}),
])
def test_the_verifier_names_each_kind_of_tampering(venue: Venue, tmp_path: Path, tamper: str,
                                                   codes: set[str]) -> None:
    record, _ = held_draw(venue)
    if tamper == "wrong_seed":
        record["seed"] = "00" * 32
    elif tamper == "edited_list":
        # A winner's ticket swapped for one nobody held: the list no longer gives that winner.
        kept = [t for t in record["tickets"] if t != record["winners"][0]]
        record["tickets"] = sorted([*kept, "ZZZZZZZZZZ"])
    elif tamper == "moved_winner":
        loser = next(t for t in record["tickets"] if t not in record["winners"])
        record["winners"][0] = loser
    else:
        record["commitment"] = hashlib.sha256(b"another seed").hexdigest()
    assert {p.code for p in drawrule.verify(record)} == codes
    out = verify_file(record, tmp_path)
    assert out.returncode == 1
    assert {line.split()[1].rstrip(":") for line in out.stdout.splitlines()} == codes


def test_inclusion_proofs_verify_and_fail_on_a_foreign_ticket(venue: Venue) -> None:
    record, tickets = held_draw(venue, people=6, prizes=1)
    event_id = record["event"]["id"]
    for ticket in tickets:
        proof = venue.client.get(f"/public/events/{event_id}/tickets/{ticket}/proof").json()
        assert proof["merkle_root"] == record["merkle_root"]
        assert drawrule.proof_valid(ticket, proof["path"], record["merkle_root"])
        assert not drawrule.proof_valid("ZZZZZZZZZZ", proof["path"], record["merkle_root"])
    r = venue.client.get(f"/public/events/{event_id}/tickets/ZZZZZZZZZZ/proof")
    assert (r.status_code, r.json()["code"]) == (409, "event_unknown_ticket")


def test_the_rule_on_the_worked_example_of_the_docs() -> None:
    seed = bytes(range(32))
    tickets = ["0A1B2C3D4E", "5F6G7H8J9K", "ABCDEFGHJK", "MNPQRSTVWX", "YZ01234567"]
    assert drawrule.commitment(seed) == hashlib.sha256(seed).hexdigest()
    leaves = [hashlib.sha256(b"\x00" + t.encode()).digest() for t in tickets]

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()
    # Five leaves: (01)(23)(4) → ((01)(23))(4) → root; the odd one climbs unchanged.
    root = node(node(node(leaves[0], leaves[1]), node(leaves[2], leaves[3])), leaves[4])
    assert drawrule.merkle_root(tickets) == root.hex()
    assert drawrule.winners(seed, "", tickets, 2) == \
        drawrule.winners(seed, "", list(reversed(tickets)), 2)  # order of the list is no input
    assert drawrule.winners(seed, "x", tickets, 10) != [] and \
        len(drawrule.winners(seed, "x", tickets, 10)) == 5


def test_winners_are_notified_and_collect_their_prize_once(venue: Venue) -> None:
    record, _ = held_draw(venue, people=5, prizes=2)
    event_id = record["event"]["id"]
    first = record["winners"][0]
    done = venue.clerk.ok("POST", f"/events/{event_id}/winners/{first}/collect")
    assert done["collected_at"]
    again = venue.clerk.post(f"/events/{event_id}/winners/{first}/collect")
    assert (again.status_code, again.json()["code"]) == (409, "event_wrong_state")
    loser = next(t for t in record["tickets"] if t not in record["winners"])
    r = venue.clerk.post(f"/events/{event_id}/winners/{loser}/collect")
    assert r.json()["code"] == "event_unknown_ticket"
    # A second draw of the same event is refused: its winners stand.
    r = venue.organiser.post(f"/events/{event_id}/draw", {"public_value": "again"})
    assert r.json()["code"] == "event_wrong_state"
