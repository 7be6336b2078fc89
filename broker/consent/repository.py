"""All of the consent register's SQL. Functions take the caller's session; none commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from broker.consent.models import (
    ConsentIdempotencyRow,
    ConsentRow,
    ConsentStateRow,
    ConsentSubjectRow,
)
from broker.db import UTCDateTime
from broker.registry.models import AgencyRow

__all__ = [
    "add_consent",
    "add_state",
    "agency_ids",
    "claim_idempotency_key",
    "consent",
    "find",
    "idempotency_row",
    "release_idempotency_key",
    "state_rows_for",
    "states",
    "subjects",
]


def add_consent(session: Session, row: ConsentRow, person_keys: Collection[str]) -> None:
    session.add(row)
    session.flush()  # the subjects and states refer to it
    session.add_all(ConsentSubjectRow(consent_id=row.id, person_key=k) for k in person_keys)


def add_state(session: Session, row: ConsentStateRow) -> None:
    session.add(row)


def idempotency_row(session: Session, key: str, now: datetime) -> ConsentIdempotencyRow | None:
    """The statement recorded under ``key``, once expired keys are forgotten."""
    session.execute(sa.delete(ConsentIdempotencyRow).where(ConsentIdempotencyRow.expires_at < now))
    return session.get(ConsentIdempotencyRow, key)


def claim_idempotency_key(session: Session, row: ConsentIdempotencyRow) -> None:
    """Insert the key; a concurrent claim of the same key fails on the primary key."""
    session.add(row)
    session.flush()


def release_idempotency_key(session: Session, key: str) -> None:
    session.execute(sa.delete(ConsentIdempotencyRow).where(ConsentIdempotencyRow.key == key))


def consent(session: Session, consent_id: str) -> ConsentRow | None:
    return session.get(ConsentRow, consent_id)


def states(session: Session, consent_ids: Collection[str]) -> dict[str, list[ConsentStateRow]]:
    """The state rows of each consent, in the order they were recorded."""
    out: dict[str, list[ConsentStateRow]] = defaultdict(list)
    if not consent_ids:
        return out
    query = (
        sa.select(ConsentStateRow)
        .where(ConsentStateRow.consent_id.in_(list(consent_ids)))
        .order_by(ConsentStateRow.consent_id, ConsentStateRow.seq)
    )
    for row in session.scalars(query):
        out[row.consent_id].append(row)
    return out


def subjects(session: Session, consent_ids: Collection[str]) -> dict[str, set[str]]:
    """The person keys of each consent."""
    out: dict[str, set[str]] = defaultdict(set)
    if not consent_ids:
        return out
    query = sa.select(ConsentSubjectRow).where(ConsentSubjectRow.consent_id.in_(list(consent_ids)))
    for row in session.scalars(query):
        out[row.consent_id].add(row.person_key)
    return out


def find(
    session: Session,
    person_keys: Collection[str],
    *,
    purpose: str | None = None,
    recorded_by: datetime | None = None,
) -> Sequence[ConsentRow]:
    """Consents about any of ``person_keys``, oldest first."""
    if not person_keys:
        return []
    matching = sa.select(ConsentSubjectRow.consent_id).where(
        ConsentSubjectRow.person_key.in_(list(person_keys))
    )
    query = sa.select(ConsentRow).where(ConsentRow.id.in_(matching))
    if recorded_by is not None:
        query = query.where(ConsentRow.recorded_at <= recorded_by)
    rows = session.scalars(query.order_by(ConsentRow.recorded_at, ConsentRow.id)).all()
    # Filtered here for the reason given in state_rows_for.
    return [row for row in rows if purpose is None or row.purpose == purpose]


def _state_rows_query() -> sa.Select[Any]:
    consents, subjects, states = (
        ConsentRow.__table__,
        ConsentSubjectRow.__table__,
        ConsentStateRow.__table__,
    )
    return (
        sa.select(
            subjects.c.person_key,
            consents.c.id,
            consents.c.purpose,
            consents.c.scope_all,
            consents.c.scope,
            consents.c.expires_at,
            states.c.state,
            states.c.at,
        )
        .join(consents, consents.c.id == subjects.c.consent_id)
        .join(states, states.c.consent_id == consents.c.id)
        .where(
            subjects.c.person_key.in_(sa.bindparam("keys", expanding=True)),
            states.c.at <= sa.bindparam("at", type_=UTCDateTime),
        )
        .order_by(subjects.c.person_key, consents.c.id, states.c.seq)
    )


# Built once: on the family query's hot path, building the statement costs more than
# running it.
_STATE_ROWS = _state_rows_query()


def state_rows_for(
    connection: Connection, person_keys: Collection[str], purpose: str, at: datetime
) -> Sequence[Any]:
    """One row per (person key, consent, state) recorded by ``at``, in recorded order.

    The family query's hot path: one round trip, no ORM objects.
    """
    if not person_keys:
        return []
    rows = connection.execute(_STATE_ROWS, {"keys": list(person_keys), "at": at})
    # The purpose is filtered here, not in SQL: given it, planners start from the purpose
    # index, which matches most of the register, instead of the person keys (~20x slower).
    return [row for row in rows if row.purpose == purpose]


_CONSENTS, _SUBJECTS = ConsentRow.__table__, ConsentSubjectRow.__table__
_RESTRICTIONS = (
    sa.select(
        _SUBJECTS.c.person_key,
        _CONSENTS.c.purpose,
        _CONSENTS.c.expires_at,
        _CONSENTS.c.restricted_fields,
    )
    .join(_CONSENTS, _CONSENTS.c.id == _SUBJECTS.c.consent_id)
    .where(
        _SUBJECTS.c.person_key.in_(sa.bindparam("keys", expanding=True)),
        _CONSENTS.c.recorded_at <= sa.bindparam("at", type_=UTCDateTime),
    )
)


def restriction_rows_for(
    connection: Connection, person_keys: Collection[str], purpose: str, at: datetime
) -> list[Any]:
    """One row per (person key, consent for ``purpose`` recorded by ``at``) that
    restricts fields. The family query's hot path: one round trip, no ORM objects."""
    if not person_keys:
        return []
    rows = connection.execute(_RESTRICTIONS, {"keys": list(person_keys), "at": at})
    # The purpose is filtered here for the reason given in state_rows_for.
    return [row for row in rows if row.purpose == purpose and row.restricted_fields]


_AGENCY_IDS = sa.select(AgencyRow.__table__.c.id).order_by(AgencyRow.__table__.c.id)


def agency_ids(connection: Connection) -> list[str]:
    """Every registered agency, which is what a consent scoped to 'all' covers."""
    return list(connection.execute(_AGENCY_IDS).scalars())
