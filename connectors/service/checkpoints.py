"""Fork protection: the connector remembers the broker's latest audit checkpoint.

Every fetch may carry the broker's latest signed checkpoint (a C2SP signed note, signed
by the broker's log key, which the connector pins). The connector keeps the newest one
it has seen, and the roots of recent sizes, and refuses a checkpoint that contradicts
them:

- a size already seen with a different root (two histories: a fork);
- a smaller tree than the newest one, once that newest one has been known for longer
  than the reorder window (the log was truncated or rolled back). Within the window a
  smaller tree is a request that was overtaken in flight by a later one: concurrent
  queries read the broker's checkpoint moments apart;
- a larger tree whose consistency proof (RFC 6962 section 2.1.2) does not show that it
  extends one seen before, when the broker sends a proof.

The connector tells the broker the size of the newest checkpoint it holds in every
answer, and Junction's broker proves its next checkpoint consistent with that size (a
request overtaken by another may prove from an older size the connector has seen: any
remembered size will do). A larger tree without a proof, or with one from a size the
connector does not remember, is accepted and stored, so a broker that never proves
consistency is still pinned to one history from then on: any later view that differs
at a size already seen is caught.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors.errors import CheckpointInvalid, CheckpointRejected, ConfigError

__all__ = ["CheckpointGuard", "CheckpointHead", "ConsistencyCheck", "NoteVerifier"]


@dataclass(frozen=True, slots=True)
class CheckpointHead:
    """What a verified checkpoint commits to."""

    origin: str
    size: int
    root: bytes
    text: str


# Parses and verifies a signed note against the pinned broker log key; raises
# ``CheckpointInvalid`` when it is malformed or not signed by that key.
NoteVerifier = Callable[[str], CheckpointHead]
# (old_size, new_size, old_root, new_root, proof) -> whether the proof holds.
ConsistencyCheck = Callable[[int, int, bytes, bytes, Sequence[bytes]], bool]


class CheckpointGuard:
    """Holds the newest verified broker checkpoint, in memory and in ``state_file``.

    Thread-safe: fetches are verified concurrently.
    """

    def __init__(
        self,
        verify_note: NoteVerifier,
        *,
        state_file: Path | None,
        verify_consistency: ConsistencyCheck | None = None,
        reorder_window_seconds: float = 10.0,
        history: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verify_note = verify_note
        self._verify_consistency = verify_consistency
        self._state_file = state_file
        self._window = reorder_window_seconds
        self._history_size = history
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: CheckpointHead | None = None
        # When the newest checkpoint arrived; a stored one counts as long known.
        self._latest_since = float("-inf")
        self._roots: OrderedDict[int, bytes] = OrderedDict()
        if state_file is not None and state_file.exists():
            try:
                text = state_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read {state_file}: {exc.strerror}") from None
            try:
                self._latest = verify_note(text)
                self._remember(self._latest)
            except CheckpointInvalid as exc:
                raise ConfigError(
                    f"the stored broker checkpoint {state_file} does not verify under the "
                    f"pinned broker log key ({exc.detail}); check the key in the config"
                ) from None

    @property
    def latest(self) -> CheckpointHead | None:
        return self._latest

    def observe(
        self, text: str, proof: Sequence[bytes] | None = None, *, proof_from: int | None = None
    ) -> CheckpointHead:
        """Verify ``text`` and keep it if it is newer.

        ``proof`` shows that its tree extends the one of ``proof_from`` entries (default:
        the newest checkpoint held).

        Raises ``CheckpointInvalid`` (bad note or signature) or ``CheckpointRejected``
        (inconsistent with a checkpoint seen before).
        """
        head = self._verify_note(text)
        with self._lock:
            latest = self._latest
            if latest is not None:
                self._check_against(latest, head, proof, proof_from)
            self._remember(head)
            if latest is None or head.size > latest.size:
                self._store(head)
        return head

    def _remember(self, head: CheckpointHead) -> None:
        self._roots[head.size] = head.root
        self._roots.move_to_end(head.size)
        while len(self._roots) > self._history_size:
            self._roots.popitem(last=False)

    def _check_against(
        self,
        latest: CheckpointHead,
        head: CheckpointHead,
        proof: Sequence[bytes] | None,
        proof_from: int | None,
    ) -> None:
        if head.origin != latest.origin:
            raise CheckpointRejected(
                f"the checkpoint is for log {head.origin!r}, but this connector follows "
                f"{latest.origin!r}"
            )
        seen = self._roots.get(head.size)
        if seen is not None and seen != head.root:
            raise CheckpointRejected(
                f"the broker's log at size {head.size} has a different root than the one "
                "this connector has seen: the log has forked"
            )
        if head.size < latest.size and self._clock() - self._latest_since > self._window:
            raise CheckpointRejected(
                f"the broker's log has {head.size} entries, fewer than the {latest.size} "
                "this connector has already seen: it was truncated or rolled back"
            )
        if proof is None:
            return
        old_size = latest.size if proof_from is None else proof_from
        old_root = latest.root if old_size == latest.size else self._roots.get(old_size)
        if old_root is None or head.size <= old_size:
            return  # nothing this connector could check it against
        check = self._verify_consistency
        if check is None or not check(old_size, head.size, old_root, head.root, proof):
            raise CheckpointRejected(
                f"the consistency proof from size {old_size} to {head.size} does not "
                "hold: the new log does not extend the one this connector has seen"
            )

    def _store(self, head: CheckpointHead) -> None:
        self._latest = head
        self._latest_since = self._clock()
        if self._state_file is None:
            return
        tmp = self._state_file.with_suffix(self._state_file.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(head.text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self._state_file)
