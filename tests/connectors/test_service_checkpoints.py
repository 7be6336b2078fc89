"""The checkpoint guard on its own: what it keeps, what it refuses, across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.checkpoint import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint
from audit.errors import AuditError
from audit.merkle import leaf_hash, root_from_leaf_hashes
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
