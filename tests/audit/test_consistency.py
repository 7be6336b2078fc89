"""Checking a log against a checkpoint kept outside it: from the entries, not the stored tree."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from audit import TamperKind, verify_store
from audit._dbsource import DatabaseSource
from audit.checkpoint import Checkpoint, open_checkpoint
from audit.log import AuditLog
from audit.merkle import consistency_proof, verify_consistency
from audit.verify import verify_source
from tests.audit.conftest import make_entry
from tests.audit.tampering import rewrite_entry

OpenLog = Callable[..., AuditLog]


@pytest.fixture
def log(open_log: OpenLog) -> AuditLog:
    """100 entries, checkpoints every 7; the newest signs all 100."""
    log = open_log(checkpoint_interval=60, checkpoint_entries=7)
    for i in range(100):
        log.append(make_entry(i))
    log.close()
    return log


def _kept(log: AuditLog, size: int) -> Checkpoint:
    return open_checkpoint(log.store.checkpoint_at(size), log.verifier)


def _rewrite(log: AuditLog, index: int) -> None:
    rewrite_entry(log.store.engine, index, b'"purpose":"early_help"', b'"purpose":"safeguarding"')


@pytest.mark.parametrize("size", [7, 14, 56, 63, 98, 100])
def test_the_proof_is_built_from_the_entries_in_workers_or_not(log: AuditLog, size: int) -> None:
    kept = _kept(log, size)
    newest = open_checkpoint(log.store.latest_checkpoint()[1], log.verifier)  # type: ignore[index]
    stored = consistency_proof(size, 100, log.store.read_nodes) if size < 100 else []
    for source in (
        DatabaseSource(log.store, workers=2, parallel_from=0, chunk_level=3),
        DatabaseSource(log.store, workers=1, chunk_level=4),
        DatabaseSource(log.store),
    ):
        report = verify_source(source, log.verifier, log.origin, kept=kept)
        assert report.ok, report.findings
        assert report.proof == stored
        assert report.roots[size] == kept.root_hash
        verify_consistency(size, 100, kept.root_hash, newest.root_hash, report.proof)


def test_an_entry_rewritten_with_its_hash_does_not_extend_the_kept_checkpoint(
    log: AuditLog,
) -> None:
    kept = _kept(log, 56)
    _rewrite(log, 30)
    # The stored tree still proves the signed checkpoints consistent with each other ...
    verify_consistency(
        56,
        100,
        kept.root_hash,
        log.store.root_at(100),
        consistency_proof(56, 100, log.store.read_nodes),
    )
    # ... but the entries no longer rebuild the kept checkpoint.
    report = verify_store(log.store, log.verifier, kept=kept)
    first = report.first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ENTRY_ALTERED, 30)
    assert 56 not in report.roots
    assert report.proof is None


def test_a_rewrite_after_the_kept_checkpoint_leaves_it_matched(log: AuditLog) -> None:
    kept = _kept(log, 56)
    _rewrite(log, 80)
    report = verify_store(log.store, log.verifier, kept=kept)
    first = report.first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ENTRY_ALTERED, 80)
    assert report.roots[56] == kept.root_hash


def test_a_kept_checkpoint_of_another_history_is_a_fork(log: AuditLog) -> None:
    forked = Checkpoint(log.origin, 56, b"\x07" * 32)
    report = verify_store(log.store, log.verifier, kept=forked)
    first = report.first
    assert first is not None
    assert (first.kind, first.tree_size) == (TamperKind.CHECKPOINT_FORK, 56)
    assert report.roots.get(56) != forked.root_hash
