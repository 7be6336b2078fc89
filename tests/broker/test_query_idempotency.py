"""The family query's Idempotency-Key in the broker's database."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from broker.db import Database
from broker.errors import Conflict
from broker.queries.store import QueryStore
from tests.broker.foundation_kit import reset_postgres

START = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
ACTOR = "dev:council:sam.caseworker"
STILL_RUNNING = "a request with this Idempotency-Key is still running; retry shortly"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def database(tmp_path: Path, database_url: str) -> Iterator[Database]:
    database = Database.open(database_url or f"sqlite:///{tmp_path / 'broker.db'}")
    try:
        yield database
    finally:
        database.close()


def test_a_key_whose_query_never_finished_can_be_used_again_once_no_query_could_still_run(
    database: Database,
) -> None:
    """As when the broker was stopped in the middle of the query: the key is not held
    for the whole ten minutes it is kept."""
    clock = Clock()
    store = QueryStore(database, os.urandom(32), clock=clock)
    store.claim(ACTOR, "retry-1", "hash-1")
    clock.now += dt.timedelta(seconds=30)
    with pytest.raises(Conflict, match=STILL_RUNNING):
        store.claim(ACTOR, "retry-1", "hash-1")
    clock.now += dt.timedelta(minutes=2)
    again = store.claim(ACTOR, "retry-1", "hash-1")
    assert again.answer is None
    # The key is held anew, from now.
    with pytest.raises(Conflict, match=STILL_RUNNING):
        store.claim(ACTOR, "retry-1", "hash-1")
    with pytest.raises(Conflict, match="used for a different request"):
        store.claim(ACTOR, "retry-1", "hash-2")


def test_a_key_claimed_by_two_sendings_at_once_tells_the_second_it_still_runs(
    postgres_url: str,
) -> None:
    """On PostgreSQL, where two claims can overlap (SQLite takes one write at a time)."""
    reset_postgres(postgres_url)
    with closing(Database.open(postgres_url)) as database:
        _claim_at_once(database)


def _claim_at_once(database: Database) -> None:
    store = QueryStore(database, os.urandom(32))
    scoped = hashlib.sha256(f"{ACTOR}\x00at-once".encode()).hexdigest()
    now = dt.datetime.now(dt.UTC)
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            store.claim(ACTOR, "at-once", "hash-1")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reads it below
            outcome.append(exc)

    # The first sending's claim, not yet committed when the second one's arrives.
    with database.engine.connect() as first, first.begin():
        first.execute(
            sa.text(
                "INSERT INTO broker_idempotency (key, request_hash, state, created_at, expires_at)"
                " VALUES (:key, 'hash-1', 'running', :now, :later)"
            ),
            {"key": scoped, "now": now, "later": now + dt.timedelta(minutes=10)},
        )
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)
    thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], Conflict)
    assert outcome[0].detail == STILL_RUNNING
