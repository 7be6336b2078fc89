"""Registry changes from several broker processes on one database, as replicas make them.

Each process decides a change from what it reads, logs it, then stores it. Unless the
processes take turns for the whole of that, two decide from the same state: both log
version N+1 of an agreement (or the same new agency) and only one is stored.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from audit.search import SearchQuery
from broker.db import Database, create_engine, upgrade
from broker.errors import Conflict, StoreUnavailable
from broker.identity import Principal, Role
from broker.registry import RegistryService
from broker.registry.schemas import AgencyIn, AgreementCreate, AgreementIn
from connectors.protocol.envelope import body_digest
from policies.bundle import load_bundle
from policies.settings import DEFAULT_BUNDLE_DIR

pytestmark = pytest.mark.slow

PROCESSES = 4
CHANGES = 10
ADMIN = Principal(subject="u-1", name="Alex", role=Role.ADMIN, agency="council")
TERMS: dict[str, Any] = {
    "parties": ["council", "police"],
    "purposes": ["early_help_assessment"],
    "legal_bases": ["consent"],
    "fields": ["police.missing_episodes_12m"],
    "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
    "status": "active",
}


_CATALOGUE = load_bundle([DEFAULT_BUNDLE_DIR]).data["catalogue"]


def shipped_catalogue() -> dict[str, object]:
    return dict(_CATALOGUE)


def _log_key(directory: Path) -> Path:
    """A file holding the audit log's signing key, which every broker on a log shares."""
    key_file = directory / "audit-log.key"
    key_file.write_bytes(
        NoteSigner.generate(DEFAULT_ORIGIN).private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key_file


@contextmanager
def _broker(
    url: str, key_file: Path, *, lock_timeout_seconds: float = 30.0
) -> Iterator[tuple[RegistryService, AuditLog]]:
    """A broker's registry on ``url``, with its audit log in the same database."""
    engine = create_engine(url)
    upgrade(engine)
    db = Database(engine, lock_timeout_seconds=lock_timeout_seconds)
    log = AuditLog.open(url, NoteSigner.from_pem(key_file, DEFAULT_ORIGIN))
    try:
        yield (
            RegistryService(
                db, log, http=httpx.AsyncClient(), broker_name="broker", catalogue=shipped_catalogue
            ),
            log,
        )
    finally:
        log.close()
        db.close()


def _change_the_registry(url: str, key_file: Path, worker: int, start: Any, results: Any) -> None:
    """One broker process: registers the same new agencies as every other, and stores
    new terms for the shared agreement; reports the changes it was refused."""
    refused = []
    try:
        with _broker(url, key_file) as (registry, _):
            start.wait(60)
            _make_changes(registry, worker, refused)
    except Exception as exc:
        refused.append(f"worker {worker} failed: {exc!r}")
        raise
    finally:
        results.put(refused)


def _make_changes(registry: RegistryService, worker: int, refused: list[str]) -> None:
    """Register the agencies every process registers, and store terms of this
    process's own as new versions of the shared agreement."""
    for step in range(CHANGES):
        newcomer = AgencyIn(id=f"school-{step}", name="School", type="education")
        try:
            registry.create_agency(ADMIN, newcomer)
        except Conflict as exc:
            if "already registered" not in exc.detail:
                refused.append(exc.detail)
        valid_from = TERMS["valid_from"] + timedelta(minutes=worker * CHANGES + step + 1)
        terms = AgreementIn.model_validate({**TERMS, "valid_from": valid_from})
        try:
            registry.change_agreement(ADMIN, "dsa", terms)
        except Conflict as exc:
            refused.append(exc.detail)


def _logged(log: AuditLog) -> Counter[tuple[str, str]]:
    """Every registry change in the log, as (action, digest of the change)."""
    found: Counter[tuple[str, str]] = Counter()
    before = None
    while True:
        page = log.search(SearchQuery(kind="registry_change", before=before, limit=500))
        for entry in page.entries:
            found[entry.fields["reasons"][0], entry.fields["request_digest"]] += 1
        if page.next_before is None:
            return found
        before = page.next_before


def _stored(registry: RegistryService) -> Counter[tuple[str, str]]:
    """Every change the registry holds, as (action, digest of the change) as logged."""
    found: Counter[tuple[str, str]] = Counter()
    for agency in registry.list_agencies():
        change = AgencyIn.model_validate(agency.model_dump(include={"id", "name", "type"}))
        found["agency_registered", body_digest(change.model_dump(mode="json"))] += 1
    for version in registry.agreement_versions("dsa"):
        terms = AgreementIn.model_validate(
            version.model_dump(include=set(AgreementIn.model_fields))
        )
        change = {"id": "dsa", "version": version.version, **terms.model_dump(mode="json")}
        action = "agreement_created" if version.version == 1 else "agreement_changed"
        found[action, body_digest(change)] += 1
    return found


def test_changes_from_several_processes_are_each_logged_once_and_stored(
    tmp_path: Path, database_url: str
):
    url = database_url or f"sqlite:///{tmp_path / 'broker.db'}"
    key_file = _log_key(tmp_path)
    with _broker(url, key_file) as (registry, log):
        for agency, kind in (("council", "local_authority"), ("police", "police")):
            registry.create_agency(ADMIN, AgencyIn(id=agency, name=agency, type=kind))
        registry.create_agreement(ADMIN, AgreementCreate.model_validate({**TERMS, "id": "dsa"}))

        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(PROCESSES), context.Queue()
        workers = [
            context.Process(
                target=_change_the_registry, args=(url, key_file, worker, start, results)
            )
            for worker in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        refused = [detail for _ in workers for detail in results.get(timeout=120)]
        for worker in workers:
            worker.join(30)

        logged, stored = _logged(log), _stored(registry)
        versions = [v.version for v in registry.agreement_versions("dsa")]
    assert [w.exitcode for w in workers] == [0] * PROCESSES, refused
    unstored = Counter(action for action, _ in (logged - stored).elements())
    unlogged = Counter(action for action, _ in (stored - logged).elements())
    assert not unstored, f"changes logged but not stored: {dict(unstored)}"
    assert not unlogged, f"changes stored but not logged: {dict(unlogged)}"
    assert refused == [], "a change was refused that one at a time would have been made"
    assert versions == list(range(1, PROCESSES * CHANGES + 2))


def test_a_change_waits_only_so_long_for_another_broker_and_is_then_not_made(
    tmp_path: Path, database_url: str
):
    url = database_url or f"sqlite:///{tmp_path / 'broker.db'}"
    newcomer = AgencyIn(id="school", name="School", type="education")
    with (
        _broker(url, _log_key(tmp_path), lock_timeout_seconds=0.5) as (registry, log),
        closing(Database.open(url)) as other,
    ):
        with other.exclusive("registry"), pytest.raises(StoreUnavailable) as caught:
            registry.create_agency(ADMIN, newcomer)
        unchanged = [a.id for a in registry.list_agencies()]
        logged = _logged(log)
        # Once the other broker lets go, the same change is made.
        registry.create_agency(ADMIN, newcomer)
        made = [a.id for a in registry.list_agencies()]
    assert "waited 0.5 seconds for the registry lock" in caught.value.detail
    assert "try again shortly" in caught.value.detail
    assert unchanged == []
    assert logged == Counter()
    assert made == ["school"]
