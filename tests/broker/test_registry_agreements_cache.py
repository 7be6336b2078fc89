"""Agreements are read once and kept while unchanged; a change is seen when it matters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from broker.db import Database
from broker.identity import Principal, Role
from broker.registry import RegistryService
from broker.registry.schemas import AgencyIn, AgreementCreate, AgreementIn
from policies.bundle import load_bundle
from policies.settings import DEFAULT_BUNDLE_DIR

ADMIN = Principal(subject="u-1", name="Alex", role=Role.ADMIN, agency="council")
TERMS = {
    "parties": ["council", "police"],
    "purposes": ["early_help_assessment"],
    "legal_bases": ["consent"],
    "fields": ["police.missing_episodes_12m"],
    "valid_from": "2026-01-01T00:00:00Z",
    "status": "active",
}

_CATALOGUE = load_bundle([DEFAULT_BUNDLE_DIR]).data["catalogue"]


def shipped_catalogue() -> dict[str, object]:
    return dict(_CATALOGUE)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[RegistryService, RegistryService, Ticks]]:
    """Two registry services on one database, as two broker replicas would be."""
    db = Database.open(f"sqlite:///{tmp_path / 'broker.db'}")
    log = AuditLog.open(f"sqlite:///{tmp_path / 'audit.db'}", NoteSigner.generate(DEFAULT_ORIGIN))
    http = httpx.AsyncClient()
    ticks = Ticks()
    first = RegistryService(
        db, log, http=http, broker_name="broker", catalogue=shipped_catalogue, monotonic=ticks
    )
    second = RegistryService(
        db, log, http=http, broker_name="broker", catalogue=shipped_catalogue, monotonic=ticks
    )
    for agency, kind in (("council", "local_authority"), ("police", "police")):
        first.create_agency(ADMIN, AgencyIn(id=agency, name=agency, type=kind))
    try:
        yield first, second, ticks
    finally:
        log.close()
        db.close()


def _statuses(service: RegistryService) -> list[tuple[int, str]]:
    found = service.agreements_between("council", "police", datetime.now(UTC))
    return [(a.version, a.status) for a in found]


def test_a_change_on_another_replica_is_seen_within_the_recheck_window(
    replicas: tuple[RegistryService, RegistryService, Ticks],
):
    first, second, ticks = replicas
    first.create_agreement(ADMIN, AgreementCreate.model_validate({**TERMS, "id": "dsa"}))
    assert _statuses(first) == [(1, "active")]
    second.change_agreement(
        ADMIN, "dsa", AgreementIn.model_validate({**TERMS, "status": "suspended"})
    )
    # The replica that made the change sees it at once; the other within half a second.
    assert _statuses(second) == [(2, "suspended")]
    assert _statuses(first) == [(1, "active")]
    ticks.now += 0.6
    assert _statuses(first) == [(2, "suspended")]


def test_a_change_through_the_same_service_is_seen_at_once(
    replicas: tuple[RegistryService, RegistryService, Ticks],
):
    first, _, _ = replicas
    assert _statuses(first) == []
    first.create_agreement(ADMIN, AgreementCreate.model_validate({**TERMS, "id": "dsa"}))
    assert _statuses(first) == [(1, "active")]
    first.change_agreement(ADMIN, "dsa", AgreementIn.model_validate({**TERMS, "status": "ended"}))
    assert _statuses(first) == [(2, "ended")]
