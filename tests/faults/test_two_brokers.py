"""The production topology without containers: two brokers on one PostgreSQL.

Two ``junction broker serve`` processes share one database, and so one audit log, and
answer caseworkers at the same time. The log's advisory lock must serialise their
appends: afterwards the log verifies, its indexes run 0..size-1 with none repeated or
skipped, every receipt either broker handed out is in it, and every checkpoint either
broker signed is consistent with the next one.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from audit import merkle
from audit.checkpoint import NoteVerifier, open_checkpoint
from audit.store import Store
from broker.demo.layout import AUDIT_ORIGIN
from tests.faults.fault_kit import (
    assert_contiguous,
    assert_released_with_audit,
    free_port,
    load,
    log_entries,
    query_bodies,
    running_region,
    verify_log,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
QUERIES = 40
CLIENTS = 8


def _checkpoints_are_consistent(database_url: str, verifier: NoteVerifier) -> int:
    """Each stored checkpoint is signed, has the tree's root at its size, and is
    proven consistent with the next; returns how many there are."""
    store = Store.open(database_url, migrate=False)
    try:
        heads = [
            open_checkpoint(note, verifier, origin=AUDIT_ORIGIN) for _, note in store.checkpoints()
        ]
        for head in heads:
            assert head.root_hash == store.root_at(head.size), f"checkpoint {head.size} lies"
        for old, new in itertools.pairwise(heads):
            assert old.size < new.size
            proof = merkle.consistency_proof(old.size, new.size, store.read_nodes)
            merkle.verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    finally:
        store.close()
    return len(heads)


def test_two_brokers_append_to_one_log_without_a_gap_or_a_repeat(
    tmp_path: Path, fresh_postgres: str
) -> None:
    environ = {
        "JUNCTION_DATABASE_URL": fresh_postgres,
        "JUNCTION_QUERY_DEADLINE_SECONDS": "6",
        "JUNCTION_AGENCY_TIMEOUT_SECONDS": "3",
    }
    with running_region(tmp_path, environ=environ) as region:
        first = region.brokers["broker"]
        second = region.start_broker(name="broker-2", port=free_port())
        answers = asyncio.run(load(region, query_bodies(region.truth, QUERIES), clients=CLIENTS))
        assert region.process("broker").poll() is None
        assert region.process("broker-2").poll() is None
        entries = log_entries(fresh_postgres)
        size = assert_contiguous(fresh_postgres)
        verify_log(region)
        verifier = NoteVerifier.from_pem(region.log_public_key, AUDIT_ORIGIN)
        checkpoints = _checkpoints_are_consistent(fresh_postgres, verifier)

    assert {a.status for a in answers} == {200}, [a.body for a in answers if a.status != 200]
    assert {a.url for a in answers} == {first, second}, "both brokers must have answered"
    assert assert_released_with_audit(answers, entries) == QUERIES
    assert size == len(entries)
    assert checkpoints >= 2
    # The two processes' entries are interleaved in one sequence, not two runs.
    owner = {}
    for answer in answers:
        assert answer.view is not None
        for index in answer.view["receipt"]["entries"]:
            owner[index] = answer.url
    switches = sum(1 for a, b in itertools.pairwise(sorted(owner)) if owner[a] != owner[b])
    assert switches > 2, "the brokers never appended at the same time"
