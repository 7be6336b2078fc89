"""Family queries through the broker, beside the slowest connector's own time.

Starts the demo region as separate processes (six connectors on their own SQLite
agency databases, the broker on SQLite with the embedded policy engine), then 16
caseworkers ask concurrently about people of the town. For every query it records the
caseworker's latency and, from the answer itself, each agency's time as the broker
measured it (match + fetch); the slowest of those is the floor no broker could beat
without leaving an agency out. Broker CPU is read from /proc before and after the run
and divided by the audit entries (exchanges) the run appended.

    .venv/bin/python benchmarks/family_query_bench.py [--quick] [--people N] [--queries N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.demo.launcher import DemoProcesses
from broker.demo.layout import DemoPorts, prepare
from broker.foundation import open_dev_issuer
from broker.settings import BrokerSettings
from tests.broker.test_family_query import _query
from tests.broker.town_kit import subject_of

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _raw_ed25519_pair_us(seconds: float = 1.0) -> float:
    """Microseconds for one raw Ed25519 signature plus one verification of a 1 KiB
    message: the baseline for broker CPU, since each exchange is one signed request and
    one verified answer. Measured in the same run, as the machine is shared."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = os.urandom(1024)
    pairs, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        for _ in range(100):
            public.verify(key.sign(message), message)
        pairs += 100
    return (time.process_time() - started) / pairs * 1e6


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _run(
    base: str, token: str, bodies: list[dict[str, Any]], concurrency: int
) -> list[tuple[float, dict[str, Any]]]:
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def one(body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            async with gate:
                started = time.perf_counter()
                response = await c.post("/v1/family-queries", json=body)
                took = time.perf_counter() - started
            response.raise_for_status()
            return took, response.json()

        return await asyncio.gather(*(one(b) for b in bodies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 people, 64 queries")
    parser.add_argument("--people", type=int, default=None)
    parser.add_argument("--queries", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--dir", type=Path, default=None, help="reuse a town between runs")
    args = parser.parse_args()
    people = args.people or (2_000 if args.quick else 100_000)
    queries = args.queries or (64 if args.quick else 480)
    root = args.dir or Path(tempfile.mkdtemp(prefix="junction-fq-bench-"))
    layout = prepare(root, people, seed=3, ports=DemoPorts(18400, 18401))
    truth = json.loads((layout.town / "truth.json").read_text())
    rng = random.Random(11)
    known = [p for p in truth["people"] if len(p["records"]) >= 2]
    bodies = [_query(p, subject=subject_of(p)) for p in rng.choices(known, k=queries)]
    token = open_dev_issuer(
        BrokerSettings(data_dir=layout.broker_data, port=layout.ports.broker)
    ).mint(role="caseworker", agency="council", name="Bench", job_role="social_worker")

    with DemoProcesses(layout, root / "logs") as processes:
        processes.start()
        broker_pid = processes.processes["broker"].pid
        base = layout.broker_url()
        asyncio.run(_run(base, token, bodies[:8], 4))  # warm up connections and caches
        cpu_before = _cpu_seconds(broker_pid)
        size_before = httpx.get(base + "/ready", timeout=10).status_code
        started = time.perf_counter()
        results = asyncio.run(_run(base, token, bodies, args.concurrency))
        wall = time.perf_counter() - started
        cpu = _cpu_seconds(broker_pid) - cpu_before
        del size_before

    raw_pair_us = _raw_ed25519_pair_us()
    latencies = [took * 1000 for took, _ in results]
    slowest = [max((a["elapsed_ms"] or 0.0) for a in view["agencies"]) for _, view in results]
    exchanges = sum(len(view["receipt"]["entries"]) for _, view in results)
    boundary = sum(
        sum(1 for a in view["agencies"] if a["elapsed_ms"] is not None) for _, view in results
    )
    ratio50 = _pct(latencies, 0.5) / max(_pct(slowest, 0.5), 1e-9)
    ratio99 = _pct(latencies, 0.99) / max(_pct(slowest, 0.99), 1e-9)
    setup = (
        f"{people:,} people, {queries} queries, {args.concurrency} concurrent caseworkers, "
        f"broker + 6 connectors as processes on SQLite, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    print(f"| caseworker latency p50 | {_pct(latencies, 0.5):.0f} ms | - | {setup} |")
    print(f"| caseworker latency p99 | {_pct(latencies, 0.99):.0f} ms | - | same run |")
    print(
        f"| slowest agency's time p50 / p99 (baseline) | {_pct(slowest, 0.5):.0f} / "
        f"{_pct(slowest, 0.99):.0f} ms | - | match + fetch as the broker timed them |"
    )
    print(f"| latency / slowest agency, p50 | {ratio50:.2f}x | <= 1.25x | same run |")
    print(f"| latency / slowest agency, p99 | {ratio99:.2f}x | <= 2x | same run |")
    per_exchange_us = cpu / exchanges * 1e6
    print(
        f"| broker CPU per audited exchange | {per_exchange_us / 1000:.2f} ms"
        f" = {per_exchange_us / raw_pair_us:.1f}x raw Ed25519 sign+verify | <= 1 ms |"
        f" {cpu:.1f} s CPU / {exchanges} audit entries |"
    )
    print(
        f"| raw Ed25519 sign + verify, 1 KiB (baseline) | {raw_pair_us:.0f} us | - |"
        " same run, one core |"
    )
    print(f"| family queries/s | {queries / wall:.1f} | - | {wall:.1f} s wall |")
    print(
        f"| exchanges/s | {exchanges / wall:.1f} audit entries, {boundary / wall:.1f} "
        f"agency calls | - | same run |"
    )


if __name__ == "__main__":
    main()
