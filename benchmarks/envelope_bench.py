"""Envelope throughput: seal + open of a ~2 KB fetch response, beside raw Ed25519.

Both figures are measured in the same run, interleaved in short rounds so that noise from
a shared machine hits both alike; the ratio is what counts, and it is the median of the
per-round ratios (each envelope round against the raw round just before it).

    .venv/bin/python benchmarks/envelope_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.protocol import FetchResponse, KeyPair, KeyRing, ReplayCache, Signer, Verifier
from tests.protocol.factories import fetch_response

TARGET_RATIO = 0.70


def _envelope_rate(signer: Signer, verifier: Verifier, message: FetchResponse, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        verifier.open(signer.seal(message, "broker").to_bytes(), FetchResponse)
    return n / (time.perf_counter() - start)


def _raw_rate(key: KeyPair, payload: bytes, n: int) -> float:
    public = key.public_key
    start = time.perf_counter()
    for _ in range(n):
        public.verify(key.sign(payload), payload)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds instead of ~30")
    args = parser.parse_args()
    rounds, per_round = (10, 200) if args.quick else (60, 250)

    key = KeyPair.generate()
    ring = KeyRing()
    ring.add("police", key.public_key)
    signer = Signer(key, "police")
    verifier = Verifier(ring, "broker", replay_cache=ReplayCache(rounds * per_round + 10))
    message = fetch_response()
    wire = signer.seal(message, "broker").to_bytes()
    payload = os.urandom(len(wire))

    envelope_rates, raw_rates = [], []
    for _ in range(rounds):
        raw_rates.append(_raw_rate(key, payload, per_round))
        envelope_rates.append(_envelope_rate(signer, verifier, message, per_round))
    envelope = statistics.median(envelope_rates)
    raw = statistics.median(raw_rates)
    ratio = statistics.median(e / r for e, r in zip(envelope_rates, raw_rates, strict=True))
    setup = (
        f"{len(wire)} B envelope (5 persons x 4 facts), median of {rounds} interleaved rounds "
        f"x {per_round}, 1 thread, Python {platform.python_version()}, {os.cpu_count()} cores"
    )
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    print(f"| envelope seal+open | {envelope:,.0f}/s | - | {setup} |")
    print(f"| raw Ed25519 sign+verify (baseline) | {raw:,.0f}/s | - | same {len(wire)} B payload |")
    verdict = "met" if ratio >= TARGET_RATIO else "missed"
    print(
        f"| envelope / raw | {ratio:.0%} | >= {TARGET_RATIO:.0%} ({verdict}) | "
        "median of per-round ratios, same run |"
    )


if __name__ == "__main__":
    main()
