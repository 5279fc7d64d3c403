"""The SIP2 codec on its own: the checksum, a tolerant reader and a strict writer."""

from __future__ import annotations

import pytest

from cardsvc.library.sip2 import codec


def test_checksum_of_the_specifications_example() -> None:
    assert codec.checksum(b"990 402.00AY1AZ") == "FCB4"
    msg = codec.decode(b"990 402.00AY1AZFCB4")
    assert (msg.command, msg.fixed, msg.seq) == ("99", "0 402.00", "1")


def framed(body: str) -> bytes:
    data = body.encode()
    return data + codec.checksum(data).encode()


def test_fields_in_any_order_repeated_and_unknown_are_kept() -> None:
    msg = codec.decode(framed("63001" "20261205    101010" "          "
                              "AA8902112345678903|ZZfuture|AOKMCCL|ZZagain|AY4AZ"))
    assert msg.get("AA") == "8902112345678903" and msg.get("AO") == "KMCCL"
    assert msg.extra == {"ZZ": ["future", "again"]}


def test_what_real_clients_send_is_read() -> None:
    # CRLF, a blank language, "0000" for the time zone, no | before AY.
    assert codec.decode(framed("23   202612050000101010AOKMCCL|AA1AY1AZ") + b"\r\n").get(
        "AA") == "1"
    # A date two characters short: the fields are found anyway.
    assert codec.decode(b"2300020261205101010AOKMCCL|AA42|").get("AA") == "42"
    # A checksum summed over characters, and one written with three digits.
    text = "23000" + "20261205    101010" + "AOKMCCL|AA陳|AY2AZ"
    by_chars = f"{(-sum(ord(c) for c in text)) & 0xFFFF:X}"
    assert codec.decode((text + by_chars).encode()).get("AA") == "陳"
    body = b"2300020261205    101010AOKMCCL|AA7|AY3AZ"
    assert codec.decode(body + f"{(-sum(body)) & 0xFFFF:X}".lstrip("0").encode()).seq == "3"


@pytest.mark.parametrize("frame", [
    b"", b"X", b"hello", b"990 402.00AY1AZFCB5",  # a wrong checksum
    b"2300020261205    101010AOKMCCL|!!oops|", b"9" * (codec.MAX_FRAME + 1)])
def test_what_cannot_be_read_is_a_frame_error(frame: bytes) -> None:
    with pytest.raises(codec.FrameError):
        codec.decode(frame)


def test_the_writer_always_adds_sequence_and_checksum_and_cleans_values() -> None:
    out = codec.encode("24", " " * 14, [("AE", "陳|金\r門"), ("AF", "x")], "7")
    assert out.endswith(b"\r")
    body, given = out[:-5], out[-5:-1]
    assert body.endswith(b"AY7AZ") and codec.checksum(body) == given.decode()
    assert "陳/金 門".encode() in out
    assert codec.encode("94", "1", [], None)[:-5].endswith(b"AY0AZ")
