"""The draw rule (version 1), and the check of a published draw record.

Standard library only, on purpose: anyone can run this file with a bare Python to check a
county draw (`python drawrule.py record.json`), and `cardsvc draw verify` is the same code.
docs/draws.md states the rule in words, with a worked example.

Rule `cardsvc-draw-v1`:
- The seed is 32 random bytes; the commitment, published before check-in opens, is
  SHA-256(seed) in hex.
- The frozen list is the event's tickets, each once, in ascending order. Merkle tree: a
  leaf is SHA-256(0x00 ‖ ticket), a node SHA-256(0x01 ‖ left ‖ right); a level with an odd
  count carries its last hash up unchanged; the root of an empty list is SHA-256 of nothing.
- The draw key is seed ‖ UTF-8(public value) (the public value may be empty). Each ticket
  scores HMAC-SHA256(key, ticket); tickets in ascending order of (score, ticket) and the
  first k win, k = min(prizes, tickets), in that order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from dataclasses import dataclass
from typing import Any

RULE = "cardsvc-draw-v1"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def commitment(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


def leaf(ticket: str) -> bytes:
    return _sha(b"\x00" + ticket.encode("ascii"))


def _node(left: bytes, right: bytes) -> bytes:
    return _sha(b"\x01" + left + right)


def _levels(tickets: list[str]) -> list[list[bytes]]:
    level = [leaf(t) for t in tickets]
    levels = [level]
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        levels.append(nxt)
        level = nxt
    return levels


def merkle_root(tickets: list[str]) -> str:
    if not tickets:
        return _sha(b"").hex()
    return _levels(tickets)[-1][0].hex()


def inclusion_proof(tickets: list[str], ticket: str) -> list[dict[str, str]]:
    """The sibling hashes from the ticket's leaf up to the root: [{"side": "left"|"right",
    "hash": hex}] (a level where the ticket's node has no sibling adds nothing)."""
    index = tickets.index(ticket)
    path = []
    for level in _levels(tickets)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append({"side": "left" if sibling < index else "right",
                         "hash": level[sibling].hex()})
        index //= 2
    return path


def proof_valid(ticket: str, path: list[dict[str, str]], root: str) -> bool:
    """Whether the path leads from the ticket to the root (what a resident's app checks)."""
    try:
        h = leaf(ticket)
        for step in path:
            sibling = bytes.fromhex(step["hash"])
            h = _node(sibling, h) if step["side"] == "left" else _node(h, sibling)
    except (KeyError, TypeError, ValueError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(h.hex(), str(root))


def scores(seed: bytes, public_value: str, tickets: list[str]) -> dict[str, str]:
    key = seed + public_value.encode("utf-8")
    return {t: hmac.new(key, t.encode("ascii"), hashlib.sha256).hexdigest() for t in tickets}


def winners(seed: bytes, public_value: str, tickets: list[str], prizes: int) -> list[str]:
    scored = scores(seed, public_value, tickets)
    return sorted(tickets, key=lambda t: (scored[t], t))[:max(0, min(prizes, len(tickets)))]


@dataclass(frozen=True)
class Problem:
    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def verify(record: dict[str, Any]) -> list[Problem]:
    """Every way the record departs from the rule; an empty list means it holds."""
    problems: list[Problem] = []
    try:
        rule = record["rule"]
        tickets = record["tickets"]
        prizes = record["prizes"]
        published_root = record["merkle_root"]
        published_commitment = record["commitment"]
        seed_hex = record["seed"]
        public_value = record.get("public_value") or ""
        recorded = record["winners"]
    except (KeyError, TypeError):
        return [Problem("malformed", "the record lacks rule, tickets, prizes, merkle_root, "
                                     "commitment, seed or winners")]
    if rule != RULE:
        return [Problem("unknown_rule", f"this checker knows {RULE}, the record says {rule!r}")]
    if not (isinstance(tickets, list) and all(isinstance(t, str) and t.isascii()
                                              for t in tickets)
            and isinstance(recorded, list) and isinstance(prizes, int)
            and isinstance(public_value, str)):
        return [Problem("malformed", "tickets and winners are lists of ASCII strings, prizes a "
                                     "whole number, the public value a string")]
    if seed_hex is None:
        return [Problem("not_drawn", "the seed is not revealed yet: the draw has not been held")]
    try:
        seed = bytes.fromhex(seed_hex)
    except (TypeError, ValueError):
        return [Problem("malformed", "the seed is not hexadecimal")]

    if commitment(seed) != published_commitment:
        problems.append(Problem("seed_not_committed", (
            f"SHA-256 of the revealed seed is {commitment(seed)}, the commitment published "
            f"before check-in is {published_commitment}: the seed (or the commitment) was "
            "changed")))
    if tickets != sorted(set(tickets)):
        problems.append(Problem("list_not_canonical",
                                "the ticket list is not in ascending order, each ticket once"))
    root = merkle_root(tickets)
    if root != published_root:
        problems.append(Problem("list_edited", (
            f"the tickets' Merkle root is {root}, the root published when the list froze is "
            f"{published_root}: tickets were added, removed or changed")))
    expected = winners(seed, public_value, sorted(set(tickets)), prizes)
    if recorded != expected:
        moved = [f"#{n + 1} is {got!r}, the rule gives {want!r}"
                 for n, (got, want) in enumerate(zip(recorded, expected, strict=False))
                 if got != want]
        if len(recorded) != len(expected):
            moved.append(f"{len(recorded)} winner(s) recorded, the rule gives {len(expected)}")
        problems.append(Problem("winners_differ", "the winners do not follow from seed, "
                                "public value and list: " + "; ".join(moved)))
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: drawrule.py RECORD.json", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"cannot read the record: {exc}", file=sys.stderr)
        return 2
    problems = verify(record) if isinstance(record, dict) else [
        Problem("malformed", "the record is not a JSON object")]
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        return 1
    print(f"OK: {len(record['tickets'])} tickets, root {record['merkle_root']}, "
          f"winners {', '.join(record['winners']) or '(none)'} follow from the seed "
          f"committed to as {record['commitment']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
