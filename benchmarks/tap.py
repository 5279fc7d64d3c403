"""A fare tap through the real PC/SC stack, as a bus validator makes it: SELECT, mutual
authentication (2 APDUs; the answer carries card data, purse and the concession profile), the
fare chosen by the signed fare table from that profile, and the ride DEBIT with its
certificate over product, concession and full fare, against a virtual card (a senior
concession card) in pcscd's vpcd slot running in its own process (`cardsvc sim card`).

Host-side time per tap (terminal key diversification, MACs, the profile decode and fare
choice, the APDU round trips through pcscd and the card's own work), p50 and p99 over N taps,
next to the raw baseline of the same number of plain APDUs (GET UID) through the same stack
in the same run. Goal: p99 ≤ 10 ms with at most 5 APDUs per tap.

Needs pcscd with vsmartcard-vpcd and pyscard (see .ci/run). Last line:
    taps=N p50_ms=X p99_ms=Y apdus=K
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from merchants.transit import fares
from readers import crypto
from readers import protocol as p
from readers.memory import InProcessReader
from readers.pcsc import PcscReader
from readers.protocol import KeyPurpose
from readers.session import CardSession, personalise
from simulators.card import VirtualCard

SYSTEM_ID = b"BENCH001"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def prepare_card(path: Path, masters: dict[KeyPurpose, bytes]) -> bytes:
    uid = b"\x04" + secrets.token_bytes(6)
    card = VirtualCard(uid, path)
    s = CardSession(InProcessReader(card), SYSTEM_ID)
    keys = {k: (1, crypto.diversify_key(m, uid, p.AID, SYSTEM_ID)) for k, m in masters.items()}
    personalise(s, p.CardInfo("8902200000000008", "senior", dt.date(2036, 1, 1)), keys,
                profile=p.CardProfile("senior", dt.date(2036, 1, 1), 1))
    s.select()
    s.authenticate(KeyPurpose.LOAD, keys[KeyPurpose.LOAD][1], 1)
    mac = crypto.mac8(keys[KeyPurpose.LOAD][1],
                      p.load_authorisation_input(uid, "8902200000000008", 0, 10_000, 1))
    s.load(10_000, 1, 1, 0, mac)
    return uid


def fares_classes() -> dict[str, str]:
    return {c: "full" for c in p.CONCESSION_CODES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--taps", type=int, default=600)
    ap.add_argument("--reader", default="Virtual PCD 00 00")
    ap.add_argument("--vpcd", default="127.0.0.1:35963")
    args = ap.parse_args()
    if args.taps > 9_000:
        sys.exit("at most 9,000 taps: each debits NT$1 from a full NT$10,000 purse")

    masters = {k: secrets.token_bytes(16) for k in KeyPurpose}
    state = Path(tempfile.mkdtemp()) / "bench-card.json"
    uid = prepare_card(state, masters)
    card_proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "cardsvc.app.cli", "sim", "card", "--uid", uid.hex(), "--state",
         str(state), "--vpcd", args.vpcd],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "CARDSVC_SECRETS_FILE": str(state.with_suffix(".secrets"))})
    try:
        reader = PcscReader(args.reader)
        deadline = time.monotonic() + 15
        while True:
            if reader.wait_for_card(1):
                try:
                    if reader.transmit(bytes([0xFF, 0xCA, 0, 0, 0]))[:-2] == uid:
                        break
                except Exception:  # noqa: S110 - the slot is still settling
                    pass
            if time.monotonic() > deadline:
                sys.exit(f"the benchmark's card did not appear in {args.reader} (another "
                         "virtual card in the slot?)")
            time.sleep(0.2)
        debit_masters = {1: masters[KeyPurpose.DEBIT]}  # all a terminal holds
        session = CardSession(reader, SYSTEM_ID)
        for _ in range(20):  # warm-up
            reader.transmit(bytes([0xFF, 0xCA, 0, 0, 0]))

        raw: list[float] = []
        for _ in range(args.taps):
            t = time.perf_counter()
            for _ in range(4):
                reader.transmit(bytes([0xFF, 0xCA, 0, 0, 0]))
            raw.append((time.perf_counter() - t) * 1000)

        # A senior rides at the half fare here (NT$1 of 2), so every tap moves the purse.
        table = fares.FareTable(1, 1, {"3": {"full": 2, "student": 1, "half": 1}},
                                {**fares_classes(), "senior": "half"})
        taps: list[float] = []
        apdus = 0
        for i in range(args.taps):
            before = session.apdus
            t = time.perf_counter()
            session.select()
            auth = session.authenticate_with_master(KeyPurpose.DEBIT, debit_masters)
            now = int(time.time())
            choice = fares.choose(table, "3", auth.profile, dt.date.today())
            result = session.ride(choice.fare, choice.full_fare, terminal_id=9,
                                  terminal_seq=i + 1, when=now)
            taps.append((time.perf_counter() - t) * 1000)
            apdus = session.apdus - before
            assert result.record.concession == p.CONCESSION_CODES["senior"]
            assert result.record.amount == 1 and len(result.record.certificate) == p.CERT_LEN
        reader.close()
    finally:
        card_proc.terminate()
        card_proc.wait(timeout=10)

    p50, p99 = statistics.median(taps), percentile(taps, 0.99)
    r50, r99 = statistics.median(raw), percentile(raw, 0.99)
    print(f"fare taps through pcscd ({args.taps}, {apdus} APDUs each, profile read):")
    mean = statistics.mean(taps)
    print(f"  tap            p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {mean:6.2f} ms")
    print(f"  raw {apdus} APDUs   p50 {r50:6.2f} ms   p99 {r99:6.2f} ms   (GET UID, same stack)")
    print(f"  tap / raw      p50 x{p50 / r50:.2f}   p99 x{p99 / r99:.2f}")
    print(f"taps={args.taps} p50_ms={p50:.2f} p99_ms={p99:.2f} apdus={apdus}")


if __name__ == "__main__":
    main()
