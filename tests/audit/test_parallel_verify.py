"""The verifier's ways of reading a database agree, finding for finding.

A large log is checked by worker processes, each reading its own share of the chunks
(``audit._dbsource``); a small one in this process, chunk by chunk; a damaged one by one
ordered scan. Here every tamper case of ``test_tamper`` runs through all three with
16-entry chunks read in parts of 4, so that its log of 120 entries spans eight chunks
and the workers really share it.
"""

from __future__ import annotations

import hashlib
import inspect
import multiprocessing
import os
import threading
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from audit import _dbsource
from audit._chunks import _opening_problems, _openings_match
from audit.entry import leaf_bytes, prepare
from audit.log import AuditLog
from audit.merkle import NodeReader
from audit.verify import Checked, Chunk, Report, TamperKind, check_chunk, verify_source
from tests.audit import test_tamper
from tests.audit.conftest import make_entry
from tests.audit.test_tamper import log as tamper_log  # noqa: F401 - a fixture for the cases
from tests.audit.test_tamper import sqlite_log as tamper_sqlite_log  # noqa: F401 - the same

OpenLog = Callable[..., AuditLog]
SMALL = 4  # 16-entry chunks


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks read in parts of 4 entries (forked workers inherit the setting)."""
    monkeypatch.setattr(_dbsource, "_PART", 4)


class _OneScan:
    """A source without ``checked``: the verifier checks the ordered scan's chunks."""

    def __init__(self, source: _dbsource.DatabaseSource, size: int) -> None:
        self.source, self.size = source, size
        self.read_nodes: NodeReader | None = source.read_nodes

    def checkpoints(self) -> list[tuple[int, str]]:
        return self.source.checkpoints()

    def chunks(self, size: int) -> Generator[Chunk]:
        return self.source.chunks(self.size)


def _outcome(report: Report) -> tuple[object, ...]:
    findings = [(f.kind, f.index, f.tree_size) for f in report.findings]
    return report.entries, report.signed_size, report.erased, report.checkpoints, findings


def _verify_every_way(log: AuditLog) -> Report:
    """The report of the workers, after checking the other two ways agree with it."""
    store, verifier, origin = log.store, log.verifier, log.origin
    in_workers = verify_source(
        _dbsource.DatabaseSource(store, workers=2, parallel_from=0, chunk_level=SMALL),
        verifier,
        origin,
    )
    here = verify_source(
        _dbsource.DatabaseSource(store, workers=1, chunk_level=SMALL), verifier, origin
    )
    one_scan = verify_source(
        _OneScan(_dbsource.DatabaseSource(store), 1 << SMALL), verifier, origin
    )
    assert _outcome(in_workers) == _outcome(here) == _outcome(one_scan)
    return in_workers


_CASES = {
    name: case
    for name, case in vars(test_tamper).items()
    if name.startswith("test_") and callable(case)
}
# The cases that store a value of another type than its column's run on SQLite alone.
_TYPED = {
    name for name, case in _CASES.items() if "sqlite_log" in inspect.signature(case).parameters
}
_FIXTURES = {"log": "tamper_log", "sqlite_log": "tamper_sqlite_log"}


def _run_case(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_tamper, "_verify", _verify_every_way)
    case = _CASES[name]
    parameters = inspect.signature(case).parameters
    case(**{p: request.getfixturevalue(_FIXTURES.get(p, p)) for p in parameters})


@pytest.mark.usefixtures("db_url")  # each case on each backend
@pytest.mark.parametrize("name", sorted(set(_CASES) - _TYPED))
def test_tamper_case_in_workers(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_case(name, request, monkeypatch)


@pytest.mark.parametrize("name", sorted(_TYPED))
def test_tamper_case_of_a_value_stored_as_another_type_in_workers(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_case(name, request, monkeypatch)


@pytest.fixture
def log_of(open_log: OpenLog) -> Callable[[int], AuditLog]:
    def build(count: int) -> AuditLog:
        log = open_log(checkpoint_interval=60, checkpoint_entries=25)
        for i in range(count):
            log.append(make_entry(i, private={"note": f"n{i}"} if i % 3 else {}))
        log.close()
        return log

    return build


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM audit_entries WHERE idx = 0",
        "UPDATE audit_entries SET idx = -1 WHERE idx = 3",
    ],
)
def test_a_log_not_starting_at_entry_0_is_read_in_one_scan(
    log_of: Callable[[int], AuditLog], statement: str
) -> None:
    log = log_of(100)
    with log.store.engine.begin() as conn:
        conn.execute(sa.text(statement))
    first = _verify_every_way(log).first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ENTRY_DELETED, 0)


def _in_workers(log: AuditLog, **options: Any) -> Report:
    source = _dbsource.DatabaseSource(log.store, chunk_level=SMALL, **options)
    return verify_source(source, log.verifier, log.origin)


def test_the_workers_check_every_chunk(
    log_of: Callable[[int], AuditLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = log_of(100)
    here: list[int] = []
    check = _dbsource._Reader.check

    def spy(reader: _dbsource._Reader, start: int, erasing: dict[int, int]) -> Checked | None:
        here.append(os.getpid())  # workers append to their own copy of the list
        return check(reader, start, erasing)

    monkeypatch.setattr(_dbsource._Reader, "check", spy)
    report = _in_workers(log, workers=2, parallel_from=0)
    assert report.ok, report.findings
    assert (report.entries, report.signed_size) == (100, 100)
    assert here == []
    report = _in_workers(log, workers=2, parallel_from=1000)  # too small for workers
    assert report.ok
    assert len(here) == 7


def test_workers_come_from_a_fork_server_while_other_threads_run(
    log_of: Callable[[int], AuditLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = log_of(100)
    here: list[int] = []
    check = _dbsource._Reader.check

    def spy(reader: _dbsource._Reader, start: int, erasing: dict[int, int]) -> Checked | None:
        here.append(start)
        return check(reader, start, erasing)

    monkeypatch.setattr(_dbsource._Reader, "check", spy)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        context = _dbsource._context()
        assert context is not None
        assert context.get_start_method() == "forkserver"
        report = _in_workers(log, workers=2, parallel_from=0)
    finally:
        stop.set()
        other.join()
    assert report.ok, report.findings
    assert here == []


def test_erased_entries_verify_in_workers(open_log: OpenLog) -> None:
    log = open_log(checkpoint_interval=60, checkpoint_entries=10)
    for i in range(60):
        log.append(make_entry(i))
    for erased in (3, 17, 40):
        log.erase(erased, by="ig-officer", reason="subject request")
    log.close()
    report = _verify_every_way(log)
    assert report.ok, report.findings
    assert (report.entries, report.erased) == (63, 3)
    # An erasure entry that does not record what it erased, in a later chunk.
    with log.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_erasures SET erasure_idx = 55 WHERE idx = 17"))
    first = _verify_every_way(log).first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ERASURE_UNLOGGED, 17)


def test_workers_that_cannot_start_leave_the_work_to_this_process(
    log_of: Callable[[int], AuditLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = log_of(100)
    expected = _outcome(_in_workers(log, workers=1))
    monkeypatch.setattr(_dbsource, "_context", lambda: None)
    assert _outcome(_in_workers(log, workers=2, parallel_from=0)) == expected

    # A forked worker runs this module as patched here.
    monkeypatch.setattr(_dbsource, "_context", lambda: multiprocessing.get_context("fork"))

    def unreachable(setup: object) -> None:
        raise ConnectionRefusedError("too many connections")

    monkeypatch.setattr(_dbsource, "_open_reader", unreachable)
    assert _outcome(_in_workers(log, workers=2, parallel_from=0)) == expected

    def broken() -> None:
        raise RuntimeError("this worker cannot start")

    monkeypatch.setattr(_dbsource, "_start_worker", broken)
    assert _outcome(_in_workers(log, workers=2, parallel_from=0)) == expected


def test_entries_added_and_erased_while_verifying_are_no_finding(
    log_of: Callable[[int], AuditLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = log_of(100)
    store = log.store
    start_workers = _dbsource._in_workers

    def meanwhile(*args: Any) -> Iterator[Checked | None]:
        # After this process fixed the log's size, before the workers read: an append,
        # and an erasure of entry 5 by that new entry (as the log would write it).
        now = datetime.now(UTC)
        size = store.append_batch([prepare(make_entry(1000 + i), now) for i in range(2)], 0)
        with store.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_openings WHERE idx = 5"))
            conn.execute(
                sa.text("INSERT INTO audit_erasures VALUES (5, 0, 'ig', 'request', :at)"),
                {"at": size},
            )
        yield from start_workers(*args)

    monkeypatch.setattr(_dbsource, "_in_workers", meanwhile)
    report = _in_workers(log, workers=2, parallel_from=0)
    assert report.ok, report.findings
    assert (report.entries, report.erased) == (100, 0)


# -- the private-value fast path ---------------------------------------------------------


def _commitment(salt: bytes, value: str) -> bytes:
    return hashlib.sha256(salt + value.encode()).hexdigest().encode()


def _chunk(bodies: list[bytes], openings: list[tuple[int, str, bytes, str]]) -> Chunk:
    leaves = [leaf_bytes(body, index) for index, body in enumerate(bodies)]
    hashes = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return Chunk(list(range(len(leaves))), leaves, hashes, openings, {})


A, B = _commitment(b"s1", "x"), _commitment(b"s2", "y")
ONE = [(0, "a", b"s1", "x")]
TWO = [(0, "a", b"s1", "x"), (0, "b", b"s2", "y")]


@pytest.mark.parametrize(
    ("bodies", "openings", "fast"),
    [
        ([b'{"commitments":{"a":"%s"}}' % A, b'{"k":1}'], ONE, True),
        ([b'{"commitments":{"a":"%s","b":"%s"}}' % (A, B)], TWO, True),
        # stored out of name order: the exact checks decide (and find nothing)
        ([b'{"commitments":{"a":"%s","b":"%s"}}' % (A, B)], TWO[::-1], False),
        # one of two values lost
        ([b'{"commitments":{"a":"%s","b":"%s"}}' % (A, B)], ONE, False),
        # a value that does not open its commitment
        ([b'{"commitments":{"a":"%s"}}' % B], ONE, False),
        # an entry with commitments and no values
        ([b'{"commitments":{"a":"%s"}}' % A, b'{"commitments":{"a":"%s"}}' % A], ONE, False),
        # a second commitments object: only the first counts, as for the exact checks
        ([b'{"commitments":{"a":"%s"},"z":{"commitments":{"q":"1"}}}' % A], ONE, True),
        # a name that could end a JSON string
        ([b'{"commitments":{"a\\"":"%s"}}' % A], [(0, 'a"', b"s1", "x")], False),
    ],
)
def test_the_private_value_fast_path_passes_only_what_the_exact_checks_pass(
    bodies: list[bytes], openings: list[tuple[int, str, bytes, str]], fast: bool
) -> None:
    chunk = _chunk(bodies, openings)
    assert _openings_match(chunk, chunk.leaves, 0, {}) is fast
    exact = _opening_problems(chunk, chunk.leaves, 0, {})
    if fast:
        assert exact == []
    problem = check_chunk(chunk, 0, {}, []).problem
    assert problem == (min(exact, key=lambda f: f.index or 0) if exact else None)


def test_an_erasure_record_naming_an_entry_before_the_erased_one_is_reported(
    open_log: OpenLog,
) -> None:
    # An erasure entry always comes after what it erased: a record that names an
    # earlier entry is forged, however far apart the two are (here, different chunks).
    # The genuine erasure of entry 3 (by entry 60) is not reported.
    log = open_log(checkpoint_interval=60, checkpoint_entries=10)
    for i in range(60):
        log.append(make_entry(i))
    log.erase(3, by="ig-officer", reason="subject request")
    log.close()
    with log.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_openings WHERE idx = 40"))
        conn.execute(sa.text("INSERT INTO audit_erasures VALUES (40, 0, 'x', 'y', 5)"))
    first = _verify_every_way(log).first
    assert first is not None
    assert (first.kind, first.index) == (TamperKind.ERASURE_UNLOGGED, 40)
