"""Broker foundation benchmark: what identity, registry and consent cost per family query.

A family query verifies one bearer token, reads the agreements between the requester and
each provider, and reads the consent state of every person found. Each figure is
printed beside a baseline measured in the same run: a raw Ed25519 verification for the
token, and the bare SQL query (same database, same rows) for the registry and consent
reads, so the ratio shows what the service layer adds.

``python benchmarks/foundation_bench.py --quick`` runs in seconds; the full run fills
the consent register with 20,000 people. ``--postgres URL`` runs the database figures on
an empty PostgreSQL database instead of SQLite.

Output: one markdown table row per figure, ``| figure | value | target | setup |``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa
from stdnum.gb import nhs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import DEFAULT_ORIGIN, AuditLog, NoteSigner
from broker.consent import ConsentService, ConsentVocabulary
from broker.consent.models import ConsentRow, ConsentStateRow, ConsentSubjectRow
from broker.db import Database
from broker.identity import DevIssuer, Principal, Role, TokenVerifier
from broker.registry import RegistryService
from broker.registry.models import AgencyRow, AgreementRow
from broker.subjects import SubjectKeys
from connectors.protocol.keys import KeyPair
from policies.bundle import load_bundle
from policies.settings import DEFAULT_BUNDLE_DIR

MACHINE = "2 shared cores"
AGENCIES = ("council", "police", "school", "health", "housing", "social_care", "benefits")
NOW = datetime.now(UTC)
ADMIN = Principal(subject="bench", name="bench", role=Role.ADMIN, agency="council")

_CATALOGUE = load_bundle([DEFAULT_BUNDLE_DIR]).data["catalogue"]


def shipped_catalogue() -> dict[str, object]:
    return dict(_CATALOGUE)


def nhs_number(n: int) -> str:
    """A made-up NHS number of its own for each ``n`` below 10**8, with a valid check digit."""
    return next(f"{n:08d}{tail:02d}" for tail in range(100) if nhs.is_valid(f"{n:08d}{tail:02d}"))


def row(figure: str, value: str, target: str, setup: str) -> None:
    print(f"| {figure} | {value} | {target} | {setup} |", flush=True)


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """Median over 5 rounds of the mean time per call, in microseconds."""
    fn()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter() - started) / repeat * 1e6)
    return statistics.median(rounds)


class _Jwks(httpx.AsyncBaseTransport):
    def __init__(self, issuer: DevIssuer) -> None:
        self.issuer = issuer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            return httpx.Response(200, json=self.issuer.discovery(), request=request)
        return httpx.Response(200, json=self.issuer.jwks(), request=request)


def bench_tokens(repeat: int) -> None:
    issuer = DevIssuer(KeyPair.generate(), "https://idp.example", "junction-broker")
    token = issuer.mint(role=Role.CASEWORKER, agency="council", name="Sam Okafor")
    key = KeyPair.generate()
    message, signature = token.encode(), key.sign(token.encode())

    async def run() -> tuple[float, float]:
        async with httpx.AsyncClient(transport=_Jwks(issuer)) as http:
            verifier = TokenVerifier(issuer.issuer, "junction-broker", http)
            await verifier.verify(token)
            loop_rounds = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(repeat):
                    await verifier.verify(token)
                loop_rounds.append((time.perf_counter() - started) / repeat * 1e6)
            return statistics.median(loop_rounds), per_call_us(
                lambda: key.public_key.verify(signature, message), repeat
            )

    verify_us, raw_us = asyncio.run(run())
    setup = f"EdDSA token of {len(token)} bytes, JWKS cached; {MACHINE}"
    row("token verification per request", f"{verify_us:.0f} µs", "< 1 ms", setup)
    row("baseline: raw Ed25519 verify", f"{raw_us:.0f} µs", "-", "same bytes")
    row("token verification / raw verify", f"{verify_us / raw_us:.1f}x", "-", setup)


def fill(db: Database, keys: SubjectKeys, people: int) -> None:
    """Agencies, 3 agreements per provider (one superseded), consents for ``people``."""
    with db.session() as session:
        for agency in AGENCIES:
            session.add(
                AgencyRow(id=agency, name=agency, type=agency, created_at=NOW, updated_at=NOW)
            )
        for provider in AGENCIES[1:]:
            for n, version in ((0, 1), (0, 2), (1, 1), (2, 1)):
                session.add(
                    AgreementRow(
                        id=f"dsa-{provider}-{n}",
                        version=version,
                        parties=["council", provider],
                        purposes=["early_help_assessment"],
                        legal_bases=["consent"],
                        fields=[f"{provider}.field_{i}" for i in range(6)],
                        valid_from=NOW - timedelta(days=300),
                        valid_to=None,
                        status="active",
                        created_at=NOW - timedelta(days=10 - version),
                        created_by="bench",
                    )
                )
    consents, subjects, states = [], [], []
    for n in range(people):
        consent_id = str(uuid.uuid4())
        consents.append(
            {
                "id": consent_id,
                "purpose": "early_help_assessment",
                "scope_all": n % 3 == 0,
                "scope": [] if n % 3 == 0 else ["police", "school"],
                "given_by": "parent",
                "channel": ("in_person", "phone", "paper", "online")[n % 4],
                "evidence_reference": None,
                "label": None,
                "recorded_by": "bench",
                "recorded_by_agency": "council",
                "recorded_at": NOW - timedelta(days=5),
                "expires_at": None,
            }
        )
        for kind, value in (("nhs_number", nhs_number(n)), ("local_ref", f"school:S{n}")):
            subjects.append({"consent_id": consent_id, "person_key": keys.reference(kind, value)})
        states.append(
            {
                "consent_id": consent_id,
                "seq": 1,
                "state": "given",
                "at": NOW - timedelta(days=5),
                "by": "b",
            }
        )
        if n % 5 == 0:
            states.append(
                {
                    "consent_id": consent_id,
                    "seq": 2,
                    "state": "withdrawn",
                    "at": NOW - timedelta(days=1),
                    "by": "b",
                }
            )
    with db.engine.begin() as conn:
        conn.execute(sa.insert(ConsentRow.__table__), consents)
        conn.execute(sa.insert(ConsentSubjectRow.__table__), subjects)
        conn.execute(sa.insert(ConsentStateRow.__table__), states)
    if db.engine.dialect.name == "postgresql":
        # As autovacuum would after such a load; without statistics the planner scans.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))


def bench_store(url: str, people: int, repeat: int, backend: str) -> None:
    db = Database.open(url)
    keys = SubjectKeys(b"benchmark-subject-key-0123456789")
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog.open(f"sqlite:///{tmp}/audit.db", NoteSigner.generate(DEFAULT_ORIGIN))
        try:
            fill(db, keys, people)
            http = httpx.AsyncClient()
            registry = RegistryService(
                db, log, http=http, broker_name="broker", catalogue=shipped_catalogue
            )
            known = ConsentVocabulary(
                frozenset({"early_help_assessment"}), frozenset(AGENCIES), frozenset()
            )
            consent = ConsentService(db, log, keys, vocabulary=lambda: known)
            family = [
                key
                for n in range(0, people, max(1, people // 6))[:6]
                for key in (
                    keys.reference("nhs_number", nhs_number(n)),
                    keys.reference("local_ref", f"school:S{n}"),
                )
            ]
            setup = f"{backend}, {people:,} people with consents, family of 6 (12 keys); {MACHINE}"

            consent_us = per_call_us(
                lambda: consent.consents_for(family, "early_help_assessment", NOW), repeat
            )
            subjects = ConsentSubjectRow.__table__
            states = ConsentStateRow.__table__
            bare = (
                sa.select(states)
                .join(subjects, subjects.c.consent_id == states.c.consent_id)
                .where(subjects.c.person_key.in_(family))
            )

            def bare_consents() -> object:
                with db.engine.connect() as conn:
                    return conn.execute(bare).all()

            bare_us = per_call_us(bare_consents, repeat)
            row("consents_for, one family", f"{consent_us:.0f} µs", "< 1 ms", setup)
            row("baseline: bare SQL join of the same rows", f"{bare_us:.0f} µs", "-", setup)

            def all_agreements() -> object:
                return [
                    registry.agreements_between("council", provider, NOW)
                    for provider in AGENCIES[1:]
                ]

            agreements_us = per_call_us(all_agreements, repeat)
            registry = RegistryService(
                db,
                log,
                http=http,
                broker_name="broker",
                catalogue=shipped_catalogue,
                agreements_recheck_seconds=0,
            )
            recheck_us = per_call_us(all_agreements, repeat)
            table = AgreementRow.__table__

            def bare_agreements() -> object:
                with db.engine.connect() as conn:
                    return conn.execute(sa.select(table)).all()

            bare_agreements_us = per_call_us(bare_agreements, repeat)
            agreement_setup = f"{backend}, 6 providers x 3 agreements (+1 superseded version)"
            row(
                "agreements_between, all 6 providers",
                f"{agreements_us:.0f} µs",
                "< 1 ms",
                agreement_setup,
            )
            row(
                "agreements_between, all 6 providers, each rechecked (COUNT)",
                f"{recheck_us:.0f} µs",
                "< 1 ms",
                agreement_setup,
            )
            row(
                "baseline: bare SELECT of every agreement row (once)",
                f"{bare_agreements_us:.0f} µs",
                "-",
                agreement_setup,
            )
            asyncio.run(http.aclose())
        finally:
            log.close()
            db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run, in seconds")
    parser.add_argument("--postgres", metavar="URL", help="an EMPTY PostgreSQL database URL")
    args = parser.parse_args()
    people, repeat = (600, 50) if args.quick else (20_000, 300)
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    bench_tokens(repeat * 4)
    if args.postgres:
        bench_store(args.postgres, people, repeat, "PostgreSQL")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            bench_store(f"sqlite:///{tmp}/broker.db", people, repeat, "SQLite (WAL)")


if __name__ == "__main__":
    main()
