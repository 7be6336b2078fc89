"""The audit log: durable group-commit appends, signed checkpoints, receipts and proofs.

Callers on any number of threads (or event-loop tasks) hand entries to one writer
thread. While the writer commits a batch, new entries queue up; the next transaction
takes all of them, so one commit (one fsync) serves many callers. ``append`` returns
only after the transaction holding the entry has committed.

The same writer signs a checkpoint once ``checkpoint_entries`` entries are unsigned or
the oldest unsigned one has waited ``checkpoint_interval`` seconds, so an entry is
covered by a signed checkpoint within about that interval: ``receipt`` waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from audit import merkle
from audit.checkpoint import Checkpoint, NoteSigner, open_checkpoint, sign_checkpoint
from audit.entry import Entry, Kind, PreparedEntry, StoredEntry, prepare
from audit.errors import (
    AuditError,
    EntryError,
    EntryNotFound,
    LogClosed,
    ReceiptTimeout,
    StoreError,
    TreeSizeError,
)
from audit.search import Page, SearchQuery, get_entry, search_entries
from audit.store import Store

__all__ = ["DEFAULT_ORIGIN", "AuditLog", "Receipt"]

_log = logging.getLogger("junction.audit")

DEFAULT_ORIGIN = "junction.local/audit"
_PROOFS_KEPT = 1024
_STOP = object()
_TICK = object()


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that entry ``index`` is in the log: a signed checkpoint and an inclusion proof."""

    index: int
    leaf_hash: bytes
    tree_size: int
    checkpoint: str
    inclusion_proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        """The receipt as JSON-ready values (hashes in hex)."""
        return {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "tree_size": self.tree_size,
            "checkpoint": self.checkpoint,
            "inclusion_proof": [h.hex() for h in self.inclusion_proof],
        }


class _Waiter:
    """Where the writer hands a synchronous caller its index (or its error).

    A bare lock, held from creation until the answer is in: the cheapest hand-over
    between threads CPython has, where a ``Future`` takes a condition variable and
    several locks per append. ``append_async`` callers are answered through their
    loop instead (``_LoopWaiter``).
    """

    __slots__ = ("_answered", "_error", "_index", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._answered = False
        self._index = -1
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._answered

    def set_result(self, index: int) -> None:
        self._index, self._answered = index, True
        self._lock.release()

    def set_exception(self, error: BaseException) -> None:
        self._error, self._answered = error, True
        self._lock.release()

    def result(self) -> int:
        with self._lock:
            if self._error is not None:
                raise self._error
            return self._index


_Settled = tuple[asyncio.Future[int], int, BaseException | None]


class _LoopWaiter:
    """Where the writer answers an event-loop caller: an asyncio future on its loop.

    The writer never touches the future itself (it belongs to the loop's thread): it
    files the answer in the ``_Outbox``, which hands a whole commit's answers to each
    loop in one call. A caller that stopped waiting (its task was cancelled) finds its
    future done; its entry is in the log all the same, and nobody else is affected.
    """

    __slots__ = ("_answered", "_loop", "_outbox", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop, outbox: _Outbox) -> None:
        self._loop, self._outbox = loop, outbox
        self.future: asyncio.Future[int] = loop.create_future()
        self._answered = False

    def done(self) -> bool:
        return self._answered

    def set_result(self, index: int) -> None:
        self._answered = True
        self._outbox.add(self._loop, (self.future, index, None))

    def set_exception(self, error: BaseException) -> None:
        self._answered = True
        self._outbox.add(self._loop, (self.future, -1, error))


class _Outbox:
    """Answers for event-loop callers, kept by the writer until its commit is done.

    One ``call_soon_threadsafe`` per loop per commit, where a future per caller would
    take one each (and each wakes the loop).
    """

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}

    def add(self, loop: asyncio.AbstractEventLoop, answer: _Settled) -> None:
        self._waiting.setdefault(loop, []).append(answer)

    def flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for loop, answers in waiting.items():
            # A closed loop has nobody left waiting on it.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[_Settled]) -> None:
    """On the caller's loop: give each future still waiting its index or its error."""
    for future, index, error in answers:
        if future.done():  # cancelled: the caller stopped waiting
            continue
        if error is None:
            future.set_result(index)
        else:
            future.set_exception(error)


_Answer = _Waiter | _LoopWaiter
_Item = tuple[PreparedEntry, _Answer]


class AuditLog:
    """An append-only, signed audit log over a ``Store``.

    ``signer.name`` must equal ``origin``: the checkpoint's origin line names the key
    that signs it. The log records its origin and verifier key on first use and refuses
    a different one later, so a log is never signed by two keys by mistake.

    Tuning: a checkpoint is signed once the oldest unsigned entry has waited
    ``checkpoint_interval`` seconds or ``checkpoint_entries`` entries are unsigned; one
    transaction takes at most ``max_batch`` entries, and the writer waits up to
    ``linger`` seconds for more callers once it has seen concurrent ones (no longer
    once as many wait as its last transaction held). ``clock``
    gives entry and checkpoint times (UTC).
    """

    def __init__(
        self,
        store: Store,
        signer: NoteSigner,
        *,
        origin: str = DEFAULT_ORIGIN,
        clock: Callable[[], datetime] = _utc_now,
        checkpoint_interval: float = 0.2,
        checkpoint_entries: int = 1000,
        max_batch: int = 5000,
        linger: float = 0.001,
        owns_store: bool = False,
    ) -> None:
        if signer.name != origin:
            raise EntryError(f"the log key's name {signer.name!r} must be the origin {origin!r}")
        self.origin = origin
        self.store = store
        self.verifier = signer.verifier()
        self._signer = signer
        self._clock = clock
        self._interval = checkpoint_interval
        self._max_unsigned = checkpoint_entries
        self._max_batch = max_batch
        self._owns_store = owns_store
        for key, value in (("origin", origin), ("log_key", self.verifier.verifier_key())):
            stored = store.set_meta_once(key, value)
            if stored != value:
                raise StoreError(f"this database holds a log with {key} {stored!r}, not {value!r}")
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._outbox = _Outbox()
        self._signed = threading.Condition()
        self._lifecycle = threading.Lock()
        self._closed = False
        self._unsigned_since: float | None = None
        self._unsigned = 0
        self._wanted = False
        self._linger = linger
        self._last_batch = 0
        self._opened: tuple[Checkpoint, str] | None = None
        self._proofs: dict[tuple[int, int], tuple[bytes, ...]] = {}
        self.writer_failure: str | None = None
        """Why the writer thread stopped, if it stopped on its own: nothing can be
        appended then, and every append says this."""
        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._writer.start()

    @classmethod
    def open(
        cls,
        url: str,
        signer: NoteSigner,
        *,
        origin: str = DEFAULT_ORIGIN,
        sqlite_synchronous: str = "FULL",
        checkpoint_interval: float = 0.2,
        checkpoint_entries: int = 1000,
        linger: float = 0.001,
    ) -> AuditLog:
        """Open (creating or migrating) the log at database ``url``.

        ``sqlite_synchronous`` is explained at ``Store.open``; the rest are the
        constructor's. Raises ``StoreError``, or ``EntryError`` for a signer whose name
        is not ``origin``.
        """
        store = Store.open(url, sqlite_synchronous=sqlite_synchronous)
        try:
            return cls(
                store,
                signer,
                origin=origin,
                checkpoint_interval=checkpoint_interval,
                checkpoint_entries=checkpoint_entries,
                linger=linger,
                owns_store=True,
            )
        except AuditError:
            store.close()
            raise

    # -- appending -----------------------------------------------------------------

    def _submit(self, entry: Entry, answer: _Answer) -> None:
        prepared = prepare(entry, self._clock())
        # Under the lock no entry can be queued behind the writer's stop signal.
        with self._lifecycle:
            if self.writer_failure is not None:
                raise LogClosed(f"{self.writer_failure}; restart the service to append again")
            if self._closed:
                raise LogClosed("the audit log is closed; open it again to append")
            self._queue.put((prepared, answer))

    def append(self, entry: Entry) -> int:
        """Append ``entry``; return its index once it is committed.

        Raises ``EntryError`` for an invalid entry, ``StoreError`` if the database
        failed (the entry is then not in the log), ``LogClosed`` after ``close``.
        """
        waiter = _Waiter()
        self._submit(entry, waiter)
        return waiter.result()

    async def append_async(self, entry: Entry) -> int:
        """``append`` for event-loop code: waits without blocking the loop."""
        waiter = _LoopWaiter(asyncio.get_running_loop(), self._outbox)
        self._submit(entry, waiter)
        return await waiter.future

    def erase(self, index: int, by: str, reason: str) -> int:
        """Delete entry ``index``'s private values; return the index of the erasure entry.

        The leaf and the tree are untouched; the entry then reads as erased by ``by``.
        ``reason`` is kept in the log in clear: it must not hold personal data.
        Raises ``EntryNotFound``, or ``EntryError`` if the entry is already erased.
        """
        stored = self.get(index)
        if stored.erasure is not None:
            raise EntryError(
                f"entry {index} was already erased by entry {stored.erasure.erasure_index}"
            )
        return self.append(Entry(kind=Kind.ERASURE, actor=by, erases=index, reasons=(reason,)))

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        pending: list[_Item] = []
        try:
            while True:
                timeout = None
                if self._unsigned_since is not None:
                    timeout = max(0.0, self._unsigned_since + self._interval - time.monotonic())
                elif self._wanted:
                    timeout = self._interval
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = _TICK
                stop = item is _STOP
                if isinstance(item, tuple):
                    pending.append(item)
                # Linger while callers keep arriving: the commit (an fsync) costs the
                # same for one entry as for a thousand, and callers released by the
                # previous commit come back within a fraction of a millisecond. Once as
                # many are waiting as the last commit held, only those already queued
                # join: waiting out the linger then holds up everyone for nobody.
                lingers = bool(pending) and not stop and self._last_batch > 1
                linger_until = time.monotonic() + self._linger if lingers else 0.0
                while len(pending) < self._max_batch:
                    try:
                        wait = linger_until - time.monotonic()
                        if len(pending) >= self._last_batch:
                            wait = 0.0
                        item = (
                            self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                    elif isinstance(item, tuple):
                        pending.append(item)
                self._last_batch = len(pending)
                self._commit_all(pending)
                self._outbox.flush()
                pending = []
                self._maybe_checkpoint(force=stop)
                if stop:
                    return
        except Exception as exc:  # noqa: BLE001 - whatever it was, the writer stops
            self._stopped(exc, pending)
            _log.error("audit_writer_stopped", exc_info=exc)
        except BaseException as exc:
            self._stopped(exc, pending)
            raise

    def _stopped(self, exc: BaseException, pending: list[_Item]) -> None:
        """Close the log for good, as the writer stops on ``exc``, and tell every caller
        whose entry was taken, or queued behind them, why it was not stored."""
        failure = StoreError(f"the audit writer stopped: {exc}")
        with self._lifecycle:
            self._closed = True
            self.writer_failure = str(failure)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                pending.append(item)
        for _, future in pending:
            if not future.done():
                future.set_exception(failure)
        self._outbox.flush()

    def _commit_all(self, items: list[_Item]) -> None:
        # An erasure commits alone, so that refusing it cannot fail anyone else's entry.
        batch: list[_Item] = []
        for item in items:
            if item[0].erases is not None:
                self._commit(batch)
                self._commit([item])
                batch = []
            else:
                batch.append(item)
        self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        if not batch:
            return
        try:
            first = self.store.append_batch([p for p, _ in batch], self._now_us())
        except (AuditError, sa.exc.SQLAlchemyError) as exc:
            self.store._compact = None
            if len(batch) > 1:
                # One bad entry must not fail the others: retry them one by one.
                for item in batch:
                    self._commit([item])
                return
            batch[0][1].set_exception(self._translate(exc, batch[0][0]))
            return
        for offset, (_, future) in enumerate(batch):
            future.set_result(first + offset)
        if self._unsigned_since is None:
            self._unsigned_since = time.monotonic()
        self._unsigned += len(batch)

    @staticmethod
    def _translate(exc: Exception, item: PreparedEntry) -> AuditError:
        if isinstance(exc, AuditError):
            return exc
        if isinstance(exc, sa.exc.IntegrityError) and item.erases is not None:
            return EntryError(f"entry {item.erases} is already erased")
        return StoreError(f"the entry was not stored: {getattr(exc, 'orig', None) or exc}")

    def _now_us(self) -> int:
        return int(self._clock().timestamp() * 1_000_000)

    def _maybe_checkpoint(self, *, force: bool = False) -> None:
        due = self._unsigned_since is not None and (
            force
            or self._unsigned >= self._max_unsigned
            or time.monotonic() - self._unsigned_since >= self._interval
        )
        # A receipt waiting for an entry another process appended is served at once;
        # one waiting for our own entries waits for the regular checkpoint, so that
        # receipts cannot turn every commit into a signing.
        foreign = self._wanted and self._unsigned_since is None
        if not due and not foreign:
            return
        try:
            self.sign_checkpoint()
        except AuditError:
            # The database is failing; appends report it. Try again on the next tick.
            return
        self._unsigned_since, self._unsigned, self._wanted = None, 0, False

    def sign_checkpoint(self) -> tuple[int, str] | None:
        """Sign and store a checkpoint of the whole log now; return ``(size, note)``.

        Returns ``None`` when the log is empty. Raises ``StoreError``.
        """
        # One read for the size, the latest checkpoint and the root; then one write.
        size, latest, root = self.store.head()
        if size == 0:
            return None
        if root is not None:
            note = sign_checkpoint(Checkpoint(self.origin, size, root), self._signer)
            latest = (size, self.store.add_checkpoint(size, note, self._now_us()))
        with self._signed:
            self._signed.notify_all()
        return latest

    # -- reading -------------------------------------------------------------------

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest signed checkpoint, verified with the log key; ``None`` if none yet."""
        signed = self.latest_signed_checkpoint()
        return None if signed is None else signed[0]

    def latest_signed_checkpoint(self) -> tuple[Checkpoint, str] | None:
        """The newest signed checkpoint, verified, with its signed-note text; one read."""
        latest = self.store.latest_checkpoint()
        if latest is None:
            return None
        note = latest[1]
        opened = self._opened
        # The same text verifies the same way: the signature is checked once per note.
        if opened is None or opened[1] != note:
            opened = (open_checkpoint(note, self.verifier, origin=self.origin), note)
            self._opened = opened
        return opened

    def latest_checkpoint_note(self) -> str | None:
        """The newest signed checkpoint as signed-note text, for handing to others."""
        latest = self.store.latest_checkpoint()
        return None if latest is None else latest[1]

    def latest_stored_checkpoint(self) -> tuple[int, str] | None:
        """The newest signed checkpoint's tree size and signed-note text, as stored."""
        return self.store.latest_checkpoint()

    def receipt(self, index: int, timeout: float = 5.0) -> Receipt:
        """Wait until a signed checkpoint covers entry ``index``; return its receipt.

        Raises ``EntryNotFound`` if no such entry was appended, ``ReceiptTimeout`` if
        none covered it within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            covering = self.store.checkpoint_covering(index)
            if covering is not None:
                size, note = covering
                proof = self.inclusion_proof(index, size)
                leaf = self.store.read_nodes([(0, index)])[(0, index)]
                return Receipt(index, leaf, size, note, tuple(proof))
            if index < 0 or index >= self.store.size():
                raise EntryNotFound(f"the log has no entry {index}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReceiptTimeout(f"no signed checkpoint covered entry {index} in {timeout}s")
            with self._signed:
                self._wanted = True
                self._queue.put(_TICK)
                self._signed.wait(min(remaining, self._interval))

    async def receipt_async(self, index: int, timeout: float = 5.0) -> Receipt:  # noqa: ASYNC109
        """``receipt`` for event-loop code."""
        return await asyncio.to_thread(self.receipt, index, timeout)

    def _reader(self, size: int) -> merkle.NodeReader:
        """A node reader that first makes sure the log has reached ``size``."""
        last = (0, size - 1)

        def read(ids: Sequence[merkle.NodeId]) -> Mapping[merkle.NodeId, bytes]:
            found = self.store.read_nodes([*ids, last])
            if last not in found:
                raise TreeSizeError(f"the log has fewer than {size} entries")
            return found

        return read

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of ``size`` entries (RFC 9162 §2.1.3).

        Raises ``TreeSizeError`` for a size the log has not reached, ``ProofError`` for
        an index outside it.
        """
        return merkle.inclusion_proof(index, size, self._reader(size))

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """Proof that the tree of ``new`` entries extends that of ``old`` (RFC 9162 §2.1.4).

        Raises ``TreeSizeError`` or ``ProofError`` as ``inclusion_proof`` does.
        """
        # A proof between two sizes never changes; the agencies of a region tend to
        # hold the same few checkpoints, so each fetch would otherwise read it again.
        key = (old, new)
        proof = self._proofs.get(key)
        if proof is None:
            proof = tuple(merkle.consistency_proof(old, new, self._reader(new)))
            if len(self._proofs) >= _PROOFS_KEPT:
                self._proofs.clear()
            self._proofs[key] = proof
        return list(proof)

    def get(self, index: int) -> StoredEntry:
        """Entry ``index`` as its leaf says, with private values or erasure.

        Raises ``EntryNotFound``.
        """
        return get_entry(self.store, index)

    def search(self, query: SearchQuery) -> Page:
        """Entries matching ``query``, newest first, one page at a time."""
        return search_entries(self.store, query)

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, sign a final checkpoint, stop the writer. Idempotent."""
        with self._lifecycle:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        self._writer.join()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(AuditError):
            self.close()
