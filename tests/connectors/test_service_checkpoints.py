"""The checkpoint guard on its own: what it keeps, what it refuses, across restarts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from audit.checkpoint import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint
from audit.errors import AuditError, ProofError
from audit.merkle import (
    NodeId,
    consistency_proof,
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
)
from connectors.errors import CheckpointInvalid, CheckpointRejected, ConfigError
from connectors.service import CheckpointGuard, CheckpointHead

ORIGIN = "junction.broker/audit"


def _verifier(signer: NoteSigner):  # type: ignore[no-untyped-def]
    def verify(text: str) -> CheckpointHead:
        try:
            checkpoint = open_checkpoint(text, signer.verifier(), origin=ORIGIN)
        except AuditError as exc:
            raise CheckpointInvalid(str(exc)) from None
        return CheckpointHead(checkpoint.origin, checkpoint.size, checkpoint.root_hash, text)

    return verify


def _note(signer: NoteSigner, size: int, tag: bytes = b"main") -> str:
    leaves = [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(size)]
    return sign_checkpoint(Checkpoint(ORIGIN, size, root_from_leaf_hashes(leaves)), signer)


def test_the_newest_checkpoint_survives_a_restart_and_still_catches_a_fork(
    tmp_path: Path,
) -> None:
    signer = NoteSigner.generate(ORIGIN)
    state = tmp_path / "broker-checkpoint.note"
    first = CheckpointGuard(_verifier(signer), state_file=state)
    first.observe(_note(signer, 3))
    first.observe(_note(signer, 7))
    restarted = CheckpointGuard(_verifier(signer), state_file=state)
    assert restarted.latest is not None
    assert restarted.latest.size == 7
    with pytest.raises(CheckpointRejected, match="forked"):
        restarted.observe(_note(signer, 7, tag=b"fork"))
    assert restarted.observe(_note(signer, 7)).size == 7


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_older_checkpoint_is_refused_once_the_newer_one_is_settled() -> None:
    signer, clock = NoteSigner.generate(ORIGIN), Clock()
    guard = CheckpointGuard(
        _verifier(signer), state_file=None, reorder_window_seconds=10, clock=clock
    )
    guard.observe(_note(signer, 9))
    clock.now += 11
    with pytest.raises(CheckpointRejected, match="fewer"):
        guard.observe(_note(signer, 4))


def test_an_older_checkpoint_overtaken_in_flight_is_accepted_but_not_kept() -> None:
    signer, clock = NoteSigner.generate(ORIGIN), Clock()
    guard = CheckpointGuard(
        _verifier(signer), state_file=None, reorder_window_seconds=10, clock=clock
    )
    guard.observe(_note(signer, 9))
    clock.now += 2
    assert guard.observe(_note(signer, 8)).size == 8
    assert guard.latest is not None
    assert guard.latest.size == 9
    with pytest.raises(CheckpointRejected, match="forked"):
        guard.observe(_note(signer, 8, tag=b"fork"))


def test_after_a_restart_an_older_checkpoint_is_refused_at_once(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    state = tmp_path / "broker-checkpoint.note"
    CheckpointGuard(_verifier(signer), state_file=state).observe(_note(signer, 6))
    restarted = CheckpointGuard(_verifier(signer), state_file=state)
    with pytest.raises(CheckpointRejected, match="rolled back"):
        restarted.observe(_note(signer, 5))


def test_a_checkpoint_by_another_key_is_invalid_and_not_stored(tmp_path: Path) -> None:
    pinned, other = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    state = tmp_path / "broker-checkpoint.note"
    guard = CheckpointGuard(_verifier(pinned), state_file=state)
    with pytest.raises(CheckpointInvalid):
        guard.observe(_note(other, 3))
    assert guard.latest is None
    assert not state.exists()


def test_a_stored_checkpoint_that_no_longer_verifies_stops_start_up(tmp_path: Path) -> None:
    old, new = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    state = tmp_path / "broker-checkpoint.note"
    state.write_text(_note(old, 3))
    with pytest.raises(ConfigError, match="pinned broker log key"):
        CheckpointGuard(_verifier(new), state_file=state)


def _leaves(size: int, tag: bytes = b"main") -> list[bytes]:
    return [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(size)]


def _proof(old: int, new: int, tag: bytes = b"main") -> list[bytes]:
    leaves = _leaves(new, tag)

    def read(ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        return {
            (level, i): root_from_leaf_hashes(leaves[i << level : (i + 1) << level])
            for level, i in ids
        }

    return consistency_proof(old, new, read)


def _consistent(old: int, new: int, old_root: bytes, new_root: bytes, proof: Any) -> bool:
    try:
        verify_consistency(old, new, old_root, new_root, proof)
    except ProofError:
        return False
    return True


def test_a_proof_may_start_at_any_size_the_connector_has_seen() -> None:
    # Two requests in flight: the second to arrive was proved from the size the
    # connector held when it answered the match, not the newest it holds now.
    signer = NoteSigner.generate(ORIGIN)
    guard = CheckpointGuard(_verifier(signer), state_file=None, verify_consistency=_consistent)
    guard.observe(_note(signer, 5))
    guard.observe(_note(signer, 9), _proof(5, 9))
    assert guard.observe(_note(signer, 12), _proof(5, 12), proof_from=5).size == 12
    with pytest.raises(CheckpointRejected, match="from size 9 to 14 does not hold"):
        guard.observe(_note(signer, 14), _proof(9, 14, tag=b"other"), proof_from=9)
    assert guard.latest is not None
    assert guard.latest.size == 12


def test_a_proof_from_a_size_never_seen_is_not_relied_on_but_the_log_stays_pinned() -> None:
    signer = NoteSigner.generate(ORIGIN)
    guard = CheckpointGuard(_verifier(signer), state_file=None, verify_consistency=_consistent)
    guard.observe(_note(signer, 5))
    # Nothing to check a proof from size 3 against: taken as a checkpoint without one.
    assert guard.observe(_note(signer, 8), [bytes(32)], proof_from=3).size == 8
    with pytest.raises(CheckpointRejected, match="forked"):
        guard.observe(_note(signer, 8, tag=b"fork"))
