"""Appending, checkpoints, receipts, proofs, reading and searching, on both backends."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from audit import merkle, verify_store
from audit.checkpoint import NoteSigner, open_checkpoint
from audit.entry import Entry, Kind
from audit.errors import EntryError, EntryNotFound, LogClosed, StoreError, TreeSizeError
from audit.log import AuditLog
from audit.search import SearchQuery
from audit.store import Store
from tests.audit.conftest import SUBJECT_KEY, make_entry

OpenLog = Callable[..., AuditLog]


def test_concurrent_appends_get_consecutive_unique_indexes(open_log: OpenLog) -> None:
    log = open_log()
    results: list[int] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        for i in range(40):
            index = log.append(make_entry(w * 100 + i))
            with lock:
                results.append(index)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(640))
    assert log.store.size() == 640


def test_two_logs_on_one_database_taking_turns_neither_repeat_nor_skip(
    open_log: OpenLog, signer: NoteSigner
) -> None:
    # Each log remembers where it left the tree; the other's appends in between must be
    # noticed (on PostgreSQL the remembered size rides in the same round trip as the
    # inserts, and a stale one is refused before anything is committed).
    first, second = open_log(), open_log()
    indexes = []
    for turn in range(6):
        log = first if turn % 2 == 0 else second
        indexes += [log.append(make_entry(turn * 10 + n)) for n in range(3)]
    assert indexes == list(range(18))
    for log in (first, second):
        log.sign_checkpoint()
    report = verify_store(first.store, signer.verifier())
    assert report.ok, report.findings
    assert report.entries == 18
    assert [first.get(i).fields["exchange_id"] for i in (0, 3, 17)] == ["x-0", "x-10", "x-52"]


def test_receipt_proves_inclusion_under_a_signed_checkpoint(open_log: OpenLog) -> None:
    log = open_log(checkpoint_interval=0.05)
    indexes = [log.append(make_entry(i)) for i in range(37)]
    receipt = log.receipt(indexes[20], timeout=5)
    checkpoint = open_checkpoint(receipt.checkpoint, log.verifier, origin=log.origin)
    assert checkpoint.size == receipt.tree_size >= 21
    stored = log.get(20)
    assert stored.leaf_hash == receipt.leaf_hash
    merkle.verify_inclusion(
        receipt.leaf_hash, 20, checkpoint.size, receipt.inclusion_proof, checkpoint.root_hash
    )
    assert receipt.to_json()["index"] == 20


def test_checkpoints_follow_entry_count_and_grow_consistently(open_log: OpenLog) -> None:
    log = open_log(checkpoint_interval=60, checkpoint_entries=10)
    for i in range(35):
        log.append(make_entry(i))
    log.receipt(29, timeout=5)
    sizes = [size for size, _ in log.store.checkpoints()]
    assert sizes
    assert all(size >= 10 for size in sizes)
    first = open_checkpoint(log.store.checkpoint_at(sizes[0]), log.verifier)
    last = log.latest_checkpoint()
    assert last is not None
    assert last.size > first.size
    proof = log.consistency_proof(first.size, last.size)
    merkle.verify_consistency(first.size, last.size, first.root_hash, last.root_hash, proof)


def test_stored_roots_match_a_recompute(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(21):
        log.append(make_entry(i))
    hashes = [log.get(i).leaf_hash for i in range(21)]
    for size in (1, 2, 7, 16, 21):
        assert log.store.root_at(size) == merkle.root_from_leaf_hashes(hashes[:size])
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(0, 22)


def test_get_reads_the_leaf_and_private_values(open_log: OpenLog) -> None:
    log = open_log()
    moment = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    index = log.append(make_entry(5, time=moment))
    stored = log.get(index)
    assert stored.kind == "fetch"
    assert stored.time == moment
    assert stored.private == {
        "justification": "Concern raised by school, case 5",
        "case_ref": "C-5",
    }
    assert "Concern" not in str(stored.fields)
    assert set(stored.fields["commitments"]) == {"justification", "case_ref"}
    with pytest.raises(EntryNotFound):
        log.get(index + 1)


def test_search_filters_and_pages_newest_first(open_log: OpenLog) -> None:
    log = open_log()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(30):
        log.append(make_entry(i, time=start + timedelta(minutes=i)))
    police = log.search(SearchQuery(counterparty_agency="police", limit=4))
    assert [e.index for e in police.entries] == [27, 24, 21, 18]
    assert police.next_before == 18
    more = log.search(SearchQuery(counterparty_agency="police", limit=4, before=18))
    assert [e.index for e in more.entries] == [15, 12, 9, 6]
    from audit.entry import subject_reference

    subject = subject_reference(SUBJECT_KEY, "NHS_number", "9434760003")
    assert [e.index for e in log.search(SearchQuery(subject=subject)).entries] == [3]
    window = SearchQuery(since=start + timedelta(minutes=10), until=start + timedelta(minutes=12))
    assert [e.index for e in log.search(window).entries] == [11, 10]
    denied = log.search(SearchQuery(decision="deny", actor="caseworker-0", limit=50))
    assert [e.index for e in denied.entries] == [28, 0]
    assert log.search(SearchQuery(query_id="q-2", kind="fetch")).entries[-1].index == 20
    with pytest.raises(EntryError):
        log.search(SearchQuery(limit=0))


def test_append_async_does_not_block_the_event_loop(open_log: OpenLog) -> None:
    log = open_log()

    async def main() -> list[int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        indexes = await asyncio.gather(*(log.append_async(make_entry(i)) for i in range(50)))
        task.cancel()
        assert ticks > 0
        return list(indexes)

    assert sorted(asyncio.run(main())) == list(range(50))


def test_a_commit_waits_no_longer_once_its_callers_are_all_back(open_log: OpenLog) -> None:
    # A linger of a whole second: were the writer to wait it out while every caller
    # of the last commit is already queued again, 20 rounds would take 20 seconds.
    log = open_log(linger=1.0)

    async def caller(w: int) -> list[int]:
        return [await log.append_async(make_entry(w * 100 + i)) for i in range(20)]

    async def main() -> tuple[list[list[int]], float]:
        began = time.monotonic()
        indexes = await asyncio.gather(*(caller(w) for w in range(8)))
        return indexes, time.monotonic() - began

    indexes, seconds = asyncio.run(main())
    assert sorted(i for mine in indexes for i in mine) == list(range(160))
    # A few seconds at most: the first rounds, before the batch reaches all eight
    # callers, may each linger once.
    assert seconds < 8.0


def test_an_async_caller_that_stops_waiting_loses_no_entry_and_stops_nobody(
    open_log: OpenLog,
) -> None:
    log = open_log()

    async def main() -> tuple[list[object], int]:
        tasks = [asyncio.create_task(log.append_async(make_entry(i))) for i in range(20)]
        await asyncio.sleep(0)  # every entry is queued; their commit is under way
        tasks[3].cancel()
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        return answers, await log.append_async(make_entry(20))

    answers, later = asyncio.run(main())
    assert isinstance(answers[3], asyncio.CancelledError)
    indexes = [answer for answer in answers if isinstance(answer, int)]
    assert len(indexes) == 19
    # The caller that stopped waiting still has its entry in the log, in its place.
    assert later == 20
    assert sorted(log.get(i).fields["exchange_id"] for i in range(21)) == sorted(
        f"x-{n}" for n in range(21)
    )


def test_async_callers_on_two_loops_each_get_their_own_indexes_and_errors(
    open_log: OpenLog,
) -> None:
    log = open_log()
    erased = log.append(make_entry(0))
    log.erase(erased, by="ig-officer", reason="subject access request")
    results: dict[str, list[int]] = {}
    refused: list[BaseException] = []

    async def appends(name: str) -> None:
        again = Entry(kind=Kind.ERASURE, actor="ig-officer", erases=erased, reasons=("again",))
        answers = await asyncio.gather(
            *(log.append_async(make_entry(n)) for n in range(30)),
            log.append_async(again),
            return_exceptions=True,
        )
        results[name] = [answer for answer in answers if isinstance(answer, int)]
        refused.extend(answer for answer in answers if isinstance(answer, BaseException))

    threads = [threading.Thread(target=asyncio.run, args=(appends(n),)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results["a"] + results["b"]) == list(range(2, 62))
    assert [str(error) for error in refused] == [f"entry {erased} is already erased"] * 2
    assert all(isinstance(error, EntryError) for error in refused)


def test_invalid_entries_fail_alone(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(EntryError):
        log.append(Entry(kind=Kind.FETCH, actor=""))
    with pytest.raises(EntryError):
        log.append(make_entry(1, private={"Bad Name": "x"}))
    with pytest.raises(EntryError):
        log.append(make_entry(1, time=datetime(2025, 1, 1)))  # noqa: DTZ001 - naive on purpose
    assert log.append(make_entry(2)) == 0


def test_closed_log_refuses_appends_and_signs_what_it_holds(open_log: OpenLog) -> None:
    log = open_log(checkpoint_interval=60)
    log.append(make_entry(1))
    log.append(make_entry(2))
    log.close()
    with pytest.raises(LogClosed):
        log.append(make_entry(3))
    latest = log.store.latest_checkpoint()
    assert latest is not None
    assert latest[0] == 2


def test_a_log_refuses_another_key(db_url: str, open_log: OpenLog) -> None:
    log = open_log()
    log.append(make_entry(1))
    log.close()
    with pytest.raises(StoreError, match="log_key"):
        AuditLog.open(db_url, NoteSigner.generate(log.origin))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_reads_from_a_database_that_cannot_be_reached_raise_store_error(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # No connection was ever pooled: every read must open one, and that fails.
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'no such folder' / 'audit.db'}"
    else:
        base = make_url(request.getfixturevalue("postgres_url"))
        url = base.set(database="junction_absent").render_as_string(hide_password=False)
    store = Store(sa.create_engine(url))
    try:
        for read in (
            store.size,
            store.latest_checkpoint,
            lambda: store.read_nodes([(0, 0), (1, 0)]),
        ):
            with pytest.raises(StoreError, match="the audit database is unavailable"):
                read()
    finally:
        store.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_after_postgres_drops_every_connection_at_most_one_read_fails(
    db_url: str, signer: NoteSigner
) -> None:
    # A server restart or failover: every connection the log holds is gone at once.
    name = "junction-audit-dropped"
    url = make_url(db_url).update_query_dict({"application_name": name})
    with AuditLog.open(url.render_as_string(hide_password=False), signer) as log:
        for n in range(5):
            log.append(make_entry(n))
        log.sign_checkpoint()
        # Several readers at once leave several connections in the pool.
        barrier = threading.Barrier(4)

        def read() -> None:
            barrier.wait()
            for _ in range(50):
                log.inclusion_proof(2, 5)

        readers = [threading.Thread(target=read) for _ in range(4)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        admin = sa.create_engine(make_url(db_url).difference_update_query(["options"]))
        with admin.begin() as conn:
            dropped = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar()
        admin.dispose()
        assert dropped is not None
        assert dropped >= 2
        failures: list[str] = []
        for _ in range(6):
            try:
                latest = log.latest_stored_checkpoint()
                proof = log.inclusion_proof(2, 5)
            except StoreError as exc:
                failures.append(str(exc))
                continue
            assert latest is not None
            assert latest[0] == 5
            assert len(proof) == 3
        assert len(failures) <= 1
        assert all("the audit database is unavailable" in failure for failure in failures)
        assert log.append(make_entry(5)) == 5
