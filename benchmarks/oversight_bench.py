"""Oversight benchmark: what an IG officer waits for on a busy log.

A log of family queries as the broker writes them (submitted, a match per agency, a
fetch per agency that knew the person, release) by 60 caseworkers over 35 days. Figures:
search by person (from an identifier), one page of search by caseworker, a subject
access report, one entry with its inclusion proof, and the anomaly report over seven
days, each beside the bare SQL lookup of the same entries' leaves in the same run.

The issue sets no targets for these; the ones printed are working targets set here
(an officer's search should feel instant; the anomaly report may take a few seconds).
``python benchmarks/oversight_bench.py --quick`` runs a small version in seconds.
Output: one markdown table row per figure, ``| figure | value | target | setup |``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from stdnum.gb import nhs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import DEFAULT_ORIGIN, AuditLog, Decision, Entry, Kind, NoteSigner
from audit._tables import entries as entries_table
from audit._tables import subjects as subjects_table
from broker.db import Database
from broker.identity.principal import Principal, Role
from broker.oversight.sar import SubjectAccessReports
from broker.oversight.schemas import AuditSearch, Identifier, SubjectAccessIn
from broker.oversight.service import OversightService
from broker.subjects import SubjectKeys

MACHINE = "2 shared cores"
AGENCIES = ("police", "education", "health", "housing", "benefits", "social-care")
END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
OFFICER = Principal("bench:ig", "IG", Role.IG_OFFICER, "council")


def nhs_number(n: int) -> str:
    """A made-up NHS number of its own for each ``n`` below 10**8, with a valid check digit."""
    return next(f"{n:08d}{tail:02d}" for tail in range(100) if nhs.is_valid(f"{n:08d}{tail:02d}"))


def row(figure: str, value: str, target: str, setup: str) -> None:
    print(f"| {figure} | {value} | {target} | {setup} |", flush=True)


def one_query(n: int, keys: SubjectKeys, people: int) -> list[Entry]:
    rng = random.Random(n)
    actor = f"dev:council:worker{n % 60}"
    day = END - timedelta(days=rng.randrange(35))
    when = day.replace(hour=9 + rng.randrange(9), minute=rng.randrange(60))
    person = nhs_number(rng.randrange(people))
    refs = (keys.reference("nhs_number", person),)
    base: dict[str, Any] = {
        "actor": actor,
        "actor_agency": "council",
        "purpose": "child_in_need_assessment",
        "legal_basis": "ca1989_s17",
        "query_id": f"q{n}",
        "time": when,
    }
    out = [
        Entry(
            kind=Kind.QUERY_SUBMITTED,
            decision=Decision.ALLOW,
            subjects=refs,
            private={"justification": f"Referral {n}"},
            **base,
        )
    ]
    known = [a for a in AGENCIES if rng.random() < 0.5]
    for agency in AGENCIES:
        status = "ok" if agency in known else "no_record"
        out.append(
            Entry(
                kind=Kind.MATCH,
                counterparty_agency=agency,
                decision=Decision.ALLOW,
                reasons=(status,),
                subjects=refs,
                **base,
            )
        )
    for agency in known:
        local = (keys.reference("local_ref", f"{agency}:R{person}"),)
        out.append(
            Entry(
                kind=Kind.FETCH,
                counterparty_agency=agency,
                decision=Decision.ALLOW,
                reasons=("ok",),
                fields_released=(f"{agency}.field_a", f"{agency}.field_b"),
                subjects=local,
                **base,
            )
        )
    out.append(Entry(kind=Kind.RELEASE, decision=Decision.ALLOW, subjects=refs, **base))
    return out


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``function`` in milliseconds."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small log, in seconds")
    args = parser.parse_args()
    queries = 300 if args.quick else 6000
    people = queries // 3
    repeat = 5 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'broker.db'}"
        keys = SubjectKeys(b"benchmark-subject-key-0123456789")
        signer = NoteSigner.generate(DEFAULT_ORIGIN)
        # Filled without fsync, to save time; measured as the broker runs it (below).
        audit = AuditLog.open(url, signer, sqlite_synchronous="NORMAL")
        db = Database.open(url)
        try:
            started = time.perf_counter()
            # Many appends in flight at once, as under load: the log commits them in groups.
            made = [e for n in range(queries) for e in one_query(n, keys, people)]
            with ThreadPoolExecutor(64) as pool:
                list(pool.map(audit.append, made))
            audit.sign_checkpoint()
            size = audit.store.size()
            fill = time.perf_counter() - started
            setup = f"{size} entries, {queries} queries, SQLite, {MACHINE}"
            row("log filled", f"{size / fill:,.0f} entries/s", "-", setup)
            # A search naming a person, and a report, each append their audit_access
            # entry: with an fsync per commit, as the broker's log runs.
            audit.close()
            audit = AuditLog.open(url, signer)

            service = OversightService(audit=audit, db=db, subjects=keys, clock=lambda: END)
            reports = SubjectAccessReports(service, audit)
            person = nhs_number(people // 2)
            ref = keys.reference("nhs_number", person)
            ids = [Identifier(kind="nhs_number", value=person)]

            def bare_person() -> None:
                with audit.store.read() as conn:
                    conn.execute(
                        sa.select(entries_table.c.leaf).where(
                            entries_table.c.idx.in_(
                                sa.select(subjects_table.c.idx).where(subjects_table.c.ref == ref)
                            )
                        )
                    ).all()

            baseline = timed(bare_person, repeat)
            by_person = timed(lambda: service.search(OFFICER, AuditSearch(identifiers=ids)), repeat)
            row("search by person", f"{by_person:.2f} ms", "<= 50 ms", setup)
            row("  baseline: bare SQL of the same leaves", f"{baseline:.2f} ms", "-", setup)
            by_actor = timed(
                lambda: service.search(OFFICER, AuditSearch(actor="dev:council:worker7", limit=50)),
                repeat,
            )
            row("search by caseworker, page of 50", f"{by_actor:.2f} ms", "<= 100 ms", setup)
            report = timed(
                lambda: reports.report(OFFICER, SubjectAccessIn(identifiers=ids)), repeat
            )
            row("subject access report", f"{report:.2f} ms", "<= 100 ms", setup)
            proof = timed(lambda: service.entry(size // 2), repeat)
            row("one entry with inclusion proof", f"{proof:.2f} ms", "<= 20 ms", setup)
            anomalies = timed(lambda: service.anomalies(None, None), max(1, repeat // 5))
            row("anomaly report, 7 days", f"{anomalies:.0f} ms", "<= 5000 ms", setup)
        finally:
            db.close()
            audit.close()


if __name__ == "__main__":
    main()
