"""The connector service over HTTP: match and fetch latency beside the source's own time.

Builds a synthetic town, wires the police connector exactly as ``junction connector
serve`` does (real SQLite source, Fellegi-Sunter matcher, Rego local policy, signed
local audit log with durable appends) and drives it through ``httpx.ASGITransport``
with signed broker envelopes. Beside each HTTP figure it prints the time the same
request spent in the source (``MappedAgency.match`` / ``fetch`` called directly, same
run), the durable append to the local audit log that every answer waits for, and a raw
Ed25519 sign+verify, the floor of one signed exchange.

    .venv/bin/python benchmarks/connector_service_bench.py [--quick] [--people N]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from connectors.config import load_service_config
from connectors.protocol.keys import KeyPair
from connectors.protocol.messages import FetchPerson, FetchRequest, MatchRequest, Subject
from connectors.service import AuditEvent, AuditKind
from connectors.service.wiring import build_connector
from connectors.settings import ConnectorSettings
from tests.connectors.town_kit import configure_agency, make_town

_WARM_UP = 10
TARGETS = {"match p50": 15.0, "match p99": 50.0, "fetch p50": 5.0}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _subject(person: dict[str, Any]) -> Subject:
    return Subject(
        given_name=person["given_name"],
        family_name=person["family_name"],
        date_of_birth=dt.date.fromisoformat(person["date_of_birth"]),
        postcode=person["postcode"],
    )


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


async def _run(people: int, requests: int) -> list[tuple[str, float, str, str]]:
    root = Path(tempfile.mkdtemp(prefix="junction-bench-"))
    started = time.perf_counter()
    truth = make_town(root / "town", people=people)
    build_s = time.perf_counter() - started
    setup = configure_agency(root / "police", root / "town", "police")
    built = build_connector(
        load_service_config(setup.config_path), ConnectorSettings(), environ=setup.environ
    )
    broker = setup.broker()
    known = [p for p in truth["people"] if "police" in p["records"]][: requests + _WARM_UP]
    fields = [offer.name for offer in built.agency.offered_fields()]
    http_match: list[float] = []
    http_fetch: list[float] = []
    src_match: list[float] = []
    src_fetch: list[float] = []
    refs: list[str] = []
    transport = httpx.ASGITransport(app=built.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://police") as client:
        for n, person in enumerate(known):
            subject = _subject(person)
            body = broker.seal(
                MatchRequest(
                    query_id=f"q{n}",
                    requester_agency="social-care",
                    purpose="child_protection_enquiry",
                    subject=subject,
                ),
                "police",
            ).to_bytes()
            start = time.perf_counter()
            response = await client.post("/v1/match", content=body)
            if n >= _WARM_UP:
                http_match.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            candidates = response.json()["body"]["candidates"]
            if candidates:
                refs.append(candidates[0]["ref"])
            source_ms = _timed(
                lambda s=subject: built.agency.match(s, include_household=True, max_candidates=5)
            )
            if n >= _WARM_UP:
                src_match.append(source_ms)
        groups = [refs[i : i + 5] for i in range(0, len(refs) - 4, 5)] or [refs]
        for n in range(requests):
            group = groups[n % len(groups)]
            body = broker.seal(
                FetchRequest(
                    query_id=f"f{n}",
                    exchange_id=f"x{n}",
                    requester_agency="social-care",
                    requester_role="social_worker",
                    purpose="child_protection_enquiry",
                    legal_basis="ca1989_s47",
                    decision_digest="sha256:" + "ab" * 32,
                    persons=[FetchPerson(ref=ref, fields=fields) for ref in group],
                ),
                "police",
            ).to_bytes()
            start = time.perf_counter()
            response = await client.post("/v1/fetch", content=body)
            http_fetch.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            src_fetch.append(
                _timed(
                    lambda g=group: (
                        built.agency.flags(list(g)),
                        built.agency.fetch(list(g), fields),
                    )
                )
            )
    event = AuditEvent(
        kind=AuditKind.FETCH, at=dt.datetime.now(dt.UTC), counterparty="broker", decision="ok"
    )
    appends = [_timed(lambda: built.audit.record(event)) for _ in range(min(requests, 200))]
    built.close()
    key = KeyPair.generate()
    payload = os.urandom(1024)
    raw = [_timed(lambda: key.public_key.verify(key.sign(payload), payload)) for _ in range(200)]
    setup_text = (
        f"police of a {people}-person town (built in {build_s:.0f}s), SQLite, "
        f"{len(http_match)} requests, {len(fields)} fields x {len(groups[0])} people per fetch"
    )
    return [
        (
            "match p50",
            _percentile(http_match, 0.5),
            f"{_percentile(src_match, 0.5):.2f}",
            setup_text,
        ),
        (
            "match p99",
            _percentile(http_match, 0.99),
            f"{_percentile(src_match, 0.99):.2f}",
            setup_text,
        ),
        (
            "fetch p50",
            _percentile(http_fetch, 0.5),
            f"{_percentile(src_fetch, 0.5):.2f}",
            setup_text,
        ),
        (
            "fetch p99",
            _percentile(http_fetch, 0.99),
            f"{_percentile(src_fetch, 0.99):.2f}",
            setup_text,
        ),
        ("local audit append p50", statistics.median(appends), "-", "durable, SQLite, 1 writer"),
        ("Ed25519 sign+verify", statistics.median(raw), "-", "1 KB payload"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small town, in seconds")
    parser.add_argument("--people", type=int, default=None, help="people in the town")
    args = parser.parse_args()
    people = args.people or (2_000 if args.quick else 20_000)
    requests = 100 if args.quick else 500
    rows = asyncio.run(_run(people, requests))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), load {load}, "
        f"Python {platform.python_version()}"
    )
    print("| figure | value (ms, over HTTP) | source alone (ms) | target | setup |")
    print("|---|---|---|---|---|")
    for name, value, source, setup in rows:
        target = f"<= {TARGETS[name]:g} ms" if name in TARGETS else "-"
        print(f"| {name} | {value:.2f} | {source} | {target} | {setup} |")


if __name__ == "__main__":
    main()
