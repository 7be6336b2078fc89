"""Agency source + matcher: match and fetch latency, beside the bare SQL they ran.

Generates a synthetic town whose GP database (the ``health`` agency) holds about 100,000
patients, on SQLite and on PostgreSQL, and measures at the source+matcher level (no
HTTP, no envelopes): a full match (blocking, Fellegi-Sunter scoring, household, linkage
tokens) of a known person, and a fetch of 20 fields for 5 people. Beside each figure it
prints the time of the bare SQL statements that call sent, captured from the engine and
re-run on a raw DBAPI cursor in the same run: the floor the connector adds to.

    .venv/bin/python benchmarks/connector_bench.py [--quick] [--people N]
        [--postgres-url URL]   # {agency} in the URL names the database to (re)create
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa

from connectors.mapping import FieldSpec, Mapping, SqlSourceSpec, load_mapping
from connectors.matching.evaluate import subject_of
from connectors.matching.matcher import Matcher
from connectors.matching.model import MatchModel
from connectors.matching.references import LocalReferences
from connectors.matching.tokens import LinkageKey
from connectors.sources import SqlSource
from connectors.synth import AGENCY_NAMES, synthesise

AGENCY = "health"
REFERENCE = dt.date(2026, 11, 1)
TARGETS = {"match p50": 15.0, "match p99": 50.0, "fetch p50": 5.0}
HEALTH_SHARE = 0.92  # the share of the town registered with a GP in the synthetic town


def bench_mapping(mapping: Mapping) -> Mapping:
    """The health mapping with 20 fields: consultation counts over more windows."""
    fields = dict(mapping.fields)
    template = fields["health.gp_contacts_12m"]
    for kind in ("gp", "ae", "mh", "hv", "sm"):
        for months in (3, 6, 24):
            assert template.aggregate is not None
            aggregate = template.aggregate.model_copy(
                update={
                    "where": {"consult_type": kind.upper()},
                    "window": template.aggregate.window.model_copy(update={"months": months})
                    if template.aggregate.window
                    else None,
                }
            )
            fields[f"health.{kind}_contacts_{months}m"] = FieldSpec(
                type=template.type,
                sensitivity=template.sensitivity,
                aggregate=aggregate,
                as_of=template.as_of,
            )
    chosen = dict(sorted(fields.items())[:20])
    return mapping.model_copy(update={"fields": chosen})


class Statements:
    """Captures the SQL statements a call sends, to re-run them bare."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.captured: list[tuple[str, Any]] = []
        self.recording = False
        sa.event.listen(engine, "before_cursor_execute", self._capture)

    def _capture(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.recording:
            self.captured.append((statement, parameters))

    def record(self, call: Callable[[], object]) -> list[tuple[str, Any]]:
        self.captured, self.recording = [], True
        try:
            call()
        finally:
            self.recording = False
        return self.captured

    def bare(self, statements: list[tuple[str, Any]]) -> float:
        """Milliseconds to run the statements on a raw DBAPI cursor and fetch all rows."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            started = time.perf_counter()
            for statement, parameters in statements:
                cursor.execute(statement, parameters)
                cursor.fetchall()
            elapsed = time.perf_counter() - started
            cursor.close()
            raw.rollback()
        finally:
            raw.close()
        return elapsed * 1000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(
    label: str, mapping: Mapping, truth: dict[str, Any], samples: int
) -> list[tuple[str, float, float]]:
    source = SqlSource(bench_mapping(mapping))
    source.check()
    references = LocalReferences(AGENCY, b"r" * 32)
    matcher = Matcher(
        source,
        model=MatchModel.load(),
        linkage_key=LinkageKey("bench", b"k" * 32),
        references=references,
    )
    statements = Statements(source.engine)
    held = truth["agencies"][AGENCY]
    people = {p["person_id"]: p for p in truth["people"]}
    rng = random.Random(1)
    keys = rng.sample(sorted(held), min(samples, len(held)))
    fields = sorted(source.mapping.fields)
    assert len(fields) == 20
    for key in keys[:10]:  # warm the pool, the caches and the server's plans
        matcher.match(subject_of(people[held[key]], with_identifiers=False))
    match_ms, match_bare, fetch_ms, fetch_bare = [], [], [], []
    correct = 0
    for index, key in enumerate(keys):
        subject = subject_of(people[held[key]], with_identifiers=index % 2 == 0)
        started = time.perf_counter()
        candidates = matcher.match(subject, max_candidates=5, include_household=True)
        match_ms.append((time.perf_counter() - started) * 1000)
        correct += bool(candidates) and references.key(candidates[0].ref) == key
        sent = statements.record(lambda s=subject: matcher.match(s, max_candidates=5))
        match_bare.append(statements.bare(sent))
        five = rng.sample(keys, 5)
        started = time.perf_counter()
        answer = source.fetch(five, fields)
        fetch_ms.append((time.perf_counter() - started) * 1000)
        assert all(len(facts) == 20 for facts in answer.values())
        sent = statements.record(lambda f=five: source.fetch(f, fields))
        fetch_bare.append(statements.bare(sent))
    source.close()
    print(
        f"# {label}: {len(held)} patients, {len(keys)} matches ({correct} right), "
        f"{len(keys)} fetches",
        file=sys.stderr,
    )
    return [
        ("match p50", statistics.median(match_ms), statistics.median(match_bare)),
        ("match p99", percentile(match_ms, 0.99), percentile(match_bare, 0.99)),
        ("fetch p50", statistics.median(fetch_ms), statistics.median(fetch_bare)),
        ("fetch p99", percentile(fetch_ms, 0.99), percentile(fetch_bare, 0.99)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small town, in seconds")
    parser.add_argument("--people", type=int, help="town size (default ~100,000 patients)")
    parser.add_argument("--samples", type=int, help="matches and fetches per backend")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/junction_bench_{agency}",
    )
    parser.add_argument("--no-postgres", action="store_true")
    arguments = parser.parse_args()
    people = arguments.people or (5_000 if arguments.quick else round(100_000 / HEALTH_SHARE))
    samples = arguments.samples or (100 if arguments.quick else 500)
    results: list[tuple[str, str, float, float]] = []
    setup: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as directory:
        town = Path(directory)
        started = time.perf_counter()
        synthesise(people, town, seed=3, reference_date=REFERENCE)
        print(
            f"# town of {people} people generated in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        truth = json.loads((town / "truth.json").read_text())
        mapping = load_mapping(
            Path(__file__).resolve().parents[1] / "connectors" / "agencies" / f"{AGENCY}.yaml",
            environ={"JUNCTION_TOWN_DIR": str(town)},
        )
        patients = len(truth["agencies"][AGENCY])
        for figure, value, bare in measure("sqlite", mapping, truth, samples):
            results.append(("sqlite", figure, value, bare))
        setup["sqlite"] = f"SQLite file, {patients} patients"
        if not arguments.no_postgres:
            started = time.perf_counter()
            synthesise(
                people,
                town / "pg",
                seed=3,
                reference_date=REFERENCE,
                server_urls={AGENCY: arguments.postgres_url},
            )
            print(
                f"# PostgreSQL copy written in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            url = arguments.postgres_url.replace("{agency}", AGENCY)
            pg = mapping.model_copy(update={"source": SqlSourceSpec(kind="sql", url=url)})
            for figure, value, bare in measure("postgresql", pg, truth, samples):
                results.append(("postgresql", figure, value, bare))
            setup["postgresql"] = f"PostgreSQL (local, psycopg 3), {patients} patients"
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores shared, Python {platform.python_version()}"
    )
    print(
        f"\nSource+matcher level, no HTTP. Machine: {machine}. Agencies in town: "
        f"{', '.join(AGENCY_NAMES)}; measured: {AGENCY}.\n"
    )
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    for backend, figure, value, bare in results:
        target = TARGETS.get(figure)
        target_text = f"<= {target:.0f} ms" if target else "-"
        verdict = "" if target is None else (" (met)" if value <= target else " (MISSED)")
        print(
            f"| {backend} {figure} | {value:.2f} ms{verdict} (bare SQL {bare:.2f} ms) | "
            f"{target_text} | {setup[backend]}; 20 fields x 5 people for fetch |"
        )


if __name__ == "__main__":
    main()
