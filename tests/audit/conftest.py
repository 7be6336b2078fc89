"""Audit fixtures: a log database on each backend, a log key, and entry factories.

Every test gets its own SQLite file or its own PostgreSQL schema, so tests never see
each other's entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from audit.checkpoint import NoteSigner
from audit.entry import Decision, Entry, Kind, subject_reference
from audit.log import DEFAULT_ORIGIN, AuditLog

SUBJECT_KEY = b"k" * 32


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    base = request.getfixturevalue("postgres_url")
    schema = f"audit_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate(DEFAULT_ORIGIN)


def make_entry(n: int, **changes: object) -> Entry:
    """A plausible fetch entry; ``n`` varies the actor, agency and private text."""
    fields: dict[str, object] = {
        "kind": Kind.FETCH,
        "actor": f"caseworker-{n % 7}",
        "actor_agency": "council",
        "counterparty_agency": ("police", "school", "health")[n % 3],
        "purpose": "early_help",
        "legal_basis": "uk_gdpr_6_1_e",
        "decision": Decision.ALLOW if n % 4 else Decision.DENY,
        "reasons": ("consent_given",),
        "fields_released": ("education.attendance_rate",),
        "subjects": (subject_reference(SUBJECT_KEY, "nhs_number", f"943 476 {n % 50:04d}"),),
        "request_digest": "sha256:" + "ab" * 32,
        "query_id": f"q-{n // 10}",
        "exchange_id": f"x-{n}",
        "private": {"justification": f"Concern raised by school, case {n}", "case_ref": f"C-{n}"},
    }
    fields.update(changes)
    return Entry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def open_log(db_url: str, signer: NoteSigner) -> Iterator[Callable[..., AuditLog]]:
    """Opens the test's log (closing every one it opened at the end)."""
    opened: list[AuditLog] = []

    def _open(**options: float) -> AuditLog:
        log = AuditLog.open(db_url, signer, **options)
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()
