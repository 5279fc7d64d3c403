"""SIP2 (3M Standard Interchange Protocol 2.00) frames: a tolerant reader, a strict writer.

A frame is a two-digit command, fixed-length fields, then variable fields `XXvalue|`, then
optionally `AY<seq>AZ<checksum>`, ended by CR. The checksum is the sum of the bytes up to and
including "AZ", two's complement, as four upper-case hex digits.

What real clients send and the reader takes: CR, LF or CRLF endings; variable fields in any
order and repeated; a missing `|` before AY; a blank language; "0000" or blanks for the time
zone; checksums summed over characters instead of bytes, or written with fewer than four
digits; fields nobody asked for (kept in `extra`). A frame it cannot read is a `FrameError`,
which the server answers with 96 (please resend), never by dropping the connection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Fixed-field lengths after the two-digit command.
FIXED_LENGTHS = {
    "93": 2,  # UID algorithm, PWD algorithm
    "99": 8,  # status code, max print width, protocol version
    "23": 21,  # language, transaction date
    "63": 31,  # language, transaction date, summary
    "35": 18,  # transaction date
    "97": 0,
    "11": 38,  # SC renewal policy, no block, transaction date, nb due date
    "09": 37,  # no block, transaction date, return date
    "29": 38,  # third party, no block, transaction date, nb due date
    "17": 18,  # transaction date
    "37": 27,  # transaction date, fee type, payment type, currency
    "15": 19,  # hold mode, transaction date
    "65": 18,  # transaction date
    "19": 18,  # transaction date
    "25": 18,  # transaction date
    "01": 19,  # card retained, transaction date
    # The answers, for a client of this codec (the demo's kiosk, the benchmark).
    "94": 1,  # ok
    "98": 34,  # six flags, timeout, retries, date/time sync, protocol version
    "24": 35,  # patron status, language, transaction date
    "64": 59,  # the same, then six item counts
    "36": 19,  # end session, transaction date
    "96": 0,
}
MAX_FRAME = 8192  # bytes; a longer line is refused with 96 and skipped to its end
_TRAILER = re.compile(r"(?:\|?AY(?P<seq>[0-9]))?\|?AZ(?P<sum>[0-9A-Fa-f]{1,4})$")
_SEQ_ONLY = re.compile(r"\|?AY(?P<seq>[0-9])\|?$")
_FIELD_CODE = re.compile(r"[A-Z][A-Z0-9]")


class FrameError(ValueError):
    """The frame cannot be read (or its checksum is wrong): answer 96."""


def checksum(data: bytes) -> str:
    return f"{(-sum(data)) & 0xFFFF:04X}"


def checksum_ok(body: bytes, text: str, given: str) -> bool:
    value = int(given, 16)
    # Some clients sum characters rather than bytes; the same for ASCII frames.
    return value in ({(-sum(body)) & 0xFFFF, (-sum(ord(c) for c in text)) & 0xFFFF})


@dataclass
class Message:
    command: str
    fixed: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    seq: str | None = None

    def get(self, code: str, default: str = "") -> str:
        values = self.fields.get(code)
        return values[0] if values else default

    @property
    def extra(self) -> dict[str, list[str]]:
        """Fields this server does not use: kept, never fatal."""
        known = {"AO", "AA", "AC", "AD", "CN", "CO", "CP", "BP", "BQ", "AB", "AJ"}
        return {k: v for k, v in self.fields.items() if k not in known}


def _split_fields(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for part in text.split("|"):
        if not part:
            continue
        code, value = part[:2], part[2:]
        if len(code) < 2 or not _FIELD_CODE.fullmatch(code):
            raise FrameError(f"not a field: {part[:20]!r}")
        fields.setdefault(code, []).append(value)
    return fields


def _realign(text: str, start: int) -> int:
    """Where the variable fields really start. A client that writes a date a few characters
    short or long shifts them; the first field code found near the expected place (most
    messages start with AO, a login with CN) is taken instead."""
    if start >= len(text) or _FIELD_CODE.fullmatch(text[start:start + 2]):
        return start
    for delta in (-1, 1, -2, 2, -3, 3, -4, 4):
        at = start + delta
        if 2 <= at < len(text) and text[at:at + 2] in ("AO", "CN", "AA", "AB"):
            return at
    return start


def decode(raw: bytes, *, encoding: str = "utf-8") -> Message:
    """One frame (without its terminator) into a message."""
    if len(raw) > MAX_FRAME:
        raise FrameError("frame too long")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # the fields still split; values may be mangled
    text = text.rstrip("\r\n")
    if len(text) < 2 or not text[:2].isdigit():
        raise FrameError("no command")
    if "\x00" in text:
        raise FrameError("NUL in a frame")
    seq = None
    trailer = _TRAILER.search(text)
    if trailer is not None:
        upto = trailer.start("sum")
        try:
            body = text[:upto].encode(encoding, "surrogateescape")
        except UnicodeError:
            raise FrameError("not in the login's encoding") from None
        if not checksum_ok(body, text[:upto], trailer.group("sum")):
            raise FrameError("checksum")
        seq = trailer.group("seq")
        text = text[:trailer.start()]
    else:
        only_seq = _SEQ_ONLY.search(text)
        if only_seq is not None:
            seq = only_seq.group("seq")
            text = text[:only_seq.start()]
    command = text[:2]
    fixed_len = FIXED_LENGTHS.get(command)
    if fixed_len is None:
        # An unknown message: the command is all the server needs to refuse it.
        return Message(command, "", {}, seq)
    start = _realign(text, 2 + fixed_len)
    fixed = text[2:start]
    return Message(command, fixed, _split_fields(text[start:]), seq)


def clean(value: str) -> str:
    """A value as a field can carry it: no separators, no line ends."""
    return value.replace("|", "/").replace("\r", " ").replace("\n", " ")


def encode(command: str, fixed: str, fields: list[tuple[str, str]], seq: str | None,
           *, encoding: str = "utf-8") -> bytes:
    """A response frame: always with AY (the request's sequence number, or 0) and AZ."""
    body = command + fixed + "".join(f"{code}{clean(value)}|" for code, value in fields)
    body += f"AY{seq or '0'}AZ"
    data = body.encode(encoding, "replace")
    return data + checksum(data).encode() + b"\r"
