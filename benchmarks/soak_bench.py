"""Soak: a steady load of family queries against the demo's processes for minutes.

Starts the demo exactly as ``junction demo`` does (six ``junction connector serve``
processes and ``junction broker serve`` on SQLite, on free ports, in a temporary
directory) and sends family queries at a fixed rate from several caseworkers. Every few
seconds it samples the resident memory (RSS, from ``/proc``) of the broker and of each
connector. It reports memory growth after warm-up (the mean of the last tenth of the
samples against the first sample after warm-up; target below 10%), errors (target 0),
queries per second and latency, beside the broker's bare ``/health`` round trip
measured in the same run.

    .venv/bin/python benchmarks/soak_bench.py [--quick] [--minutes 10] [--rate 3]

Not part of the test suite: the full run takes ten minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.faults.fault_kit import query_bodies, running_region

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * _PAGE / 2**20


@dataclass
class Soak:
    """What the run observed."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    partial: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _caseworker(
    client: httpx.AsyncClient,
    url: str,
    token: str,
    bodies: list[dict[str, Any]],
    *,
    first: int,
    period: float,
    until: float,
    soak: Soak,
) -> None:
    """Ask one query every ``period`` seconds (a steady rate, not as fast as possible)."""
    slot = time.monotonic() + (first % 10) * period / 10
    n = first
    while slot < until:
        await asyncio.sleep(max(0.0, slot - time.monotonic()))
        started = time.monotonic()
        try:
            response = await client.post(
                f"{url}/v1/family-queries",
                json=bodies[n % len(bodies)],
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            soak.error(type(exc).__name__)
        else:
            if response.status_code != 200:
                soak.error(f"HTTP {response.status_code}")
            else:
                soak.latencies.append(time.monotonic() - started)
                if response.json()["status"] != "complete":
                    soak.partial += 1
        n += 1
        slot += period


async def _sampler(pids: dict[str, int], every: float, until: float, soak: Soak) -> None:
    start = time.monotonic()
    while time.monotonic() < until:
        for name, pid in pids.items():
            soak.samples.setdefault(name, []).append((time.monotonic() - start, rss_mib(pid)))
        await asyncio.sleep(every)


async def _health_baseline(url: str, count: int = 50) -> float:
    async with httpx.AsyncClient(timeout=10.0) as client:
        started = time.monotonic()
        for _ in range(count):
            (await client.get(f"{url}/health")).raise_for_status()
        return (time.monotonic() - started) / count


def growth(samples: list[tuple[float, float]], warm_up: float) -> tuple[float, float, float] | None:
    """``(after warm-up MiB, at the end MiB, growth fraction)``; None if no sample was
    taken after the warm-up (a soak shorter than it)."""
    steady = [rss for at, rss in samples if at >= warm_up]
    if not steady:
        return None
    tail = steady[-max(1, len(steady) // 10) :]
    start, end = steady[0], statistics.fmean(tail)
    return start, end, (end - start) / start


def run(args: argparse.Namespace) -> list[str]:
    seconds = 60.0 if args.quick else args.minutes * 60
    warm_up = max(15.0, seconds * 0.2)
    rows: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="junction-soak-") as tmp,
        running_region(Path(tmp), people=args.people) as region,
    ):
        url = region.brokers["broker"]
        token = region.token(url)
        bodies = query_bodies(region.truth, 200)
        pids = {name: process.pid for name, process in region.processes.processes.items()}
        health = asyncio.run(_health_baseline(url))
        soak = Soak()

        async def soak_run() -> None:
            until = time.monotonic() + seconds
            period = args.clients / args.rate
            async with httpx.AsyncClient(timeout=60.0) as client:
                await asyncio.gather(
                    _sampler(pids, args.sample_every, until, soak),
                    *(
                        _caseworker(
                            client,
                            url,
                            token,
                            bodies,
                            first=n,
                            period=period,
                            until=until,
                            soak=soak,
                        )
                        for n in range(args.clients)
                    ),
                )

        started = time.monotonic()
        asyncio.run(soak_run())
        elapsed = time.monotonic() - started
        region.processes.check_running()

    setup = (
        f"{seconds / 60:.0f} min, {args.rate} q/s offered by {args.clients} caseworkers, "
        f"{args.people} people, SQLite broker, 6 connector processes, "
        f"{os.cpu_count()} cores ({platform.machine()}), warm-up {warm_up:.0f} s"
    )
    answered = len(soak.latencies)
    errors = sum(soak.errors.values())
    latencies = sorted(soak.latencies) or [float("nan")]
    rows.append(
        f"| soak: queries answered per second | {answered / elapsed:.2f} | {args.rate} | {setup} |"
    )
    rows.append(f"| soak: errors | {errors} {dict(soak.errors) or ''} | 0 | {setup} |")
    rows.append(f"| soak: partial answers (an agency late) | {soak.partial} | - | {setup} |")
    rows.append(
        f"| soak: query latency p50 / p95 (s) | {latencies[len(latencies) // 2]:.2f} / "
        f"{latencies[int(len(latencies) * 0.95)]:.2f} | - | {setup} |"
    )
    rows.append(
        f"| baseline: broker /health round trip (ms) | {health * 1000:.1f} | - | same run |"
    )
    worst: float | None = None
    for name in sorted(soak.samples):
        measured = growth(soak.samples[name], warm_up)
        if measured is None:
            value = f"not measured: the soak ended within its {warm_up:.0f} s warm-up"
        else:
            start, end, grew = measured
            worst = grew if worst is None else max(worst, grew)
            value = f"{start:.1f} -> {end:.1f} ({grew:+.1%})"
        rows.append(f"| soak: {name} RSS after warm-up -> end (MiB) | {value} | < +10% | {setup} |")
    largest = "not measured" if worst is None else f"{worst:+.1%}"
    rows.append(f"| soak: largest memory growth after warm-up | {largest} | < +10% | {setup} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run for about 60 seconds")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--rate", type=float, default=3.0, help="queries per second offered")
    parser.add_argument("--clients", type=int, default=6, help="concurrent caseworkers")
    parser.add_argument("--people", type=int, default=2000, help="people in the town")
    parser.add_argument(
        "--sample-every", type=float, default=5.0, help="seconds between RSS samples"
    )
    args = parser.parse_args()
    if not args.minutes > 0:
        parser.error(f"--minutes must be more than 0, not {args.minutes}")
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    for row in run(args):
        print(row)


if __name__ == "__main__":
    main()
