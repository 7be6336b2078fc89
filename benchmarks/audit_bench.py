"""Audit log benchmark: durable appends, checkpoint latency, verification, proofs.

Every figure is printed beside a baseline measured in the same run on the same data:
raw SHA-256 over the same leaves, and a bare SQL insert-and-commit of the same batch
size. Run ``python benchmarks/audit_bench.py --quick`` for a small version in seconds;
the full run takes a few minutes (it builds and verifies a log of 1,000,000 entries).

Output: one markdown table row per figure, ``| figure | value | target | setup |``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit import DEFAULT_ORIGIN, AuditLog, Decision, Entry, Kind, NoteSigner, verify_store
from audit._dbsource import DatabaseSource
from audit.checkpoint import Checkpoint, sign_checkpoint
from audit.entry import leaf_bytes, prepare, subject_reference
from audit.store import Store

MACHINE = "2 shared cores"
KEY = b"benchmark-subject-key-0123456789"


def entry(n: int) -> Entry:
    """A typical fetch entry: about 760 bytes of leaf."""
    return Entry(
        kind=Kind.FETCH,
        actor=f"caseworker-{n % 97}",
        actor_agency="council",
        counterparty_agency=("police", "school", "health", "housing")[n % 4],
        purpose="early_help",
        legal_basis="uk_gdpr_6_1_e",
        decision=Decision.ALLOW,
        reasons=("consent_given", "within_agreement"),
        fields_released=("education.attendance_rate", "education.exclusions_12m"),
        subjects=(subject_reference(KEY, "nhs_number", f"{n % 100_000:010d}"),),
        request_digest="sha256:" + hashlib.sha256(b"req%d" % n).hexdigest(),
        response_digest="sha256:" + hashlib.sha256(b"resp%d" % n).hexdigest(),
        query_id=f"q-{n // 8}",
        exchange_id=f"x-{n}",
        private={"justification": f"School raised a concern about attendance, case {n}"},
    )


def row(figure: str, value: str, target: str, setup: str) -> None:
    print(f"| {figure} | {value} | {target} | {setup} |", flush=True)


def sha256_rate(leaves: list[bytes]) -> float:
    """Leaf hashes per second for raw SHA-256 of these exact inputs (best of 3)."""
    sha = hashlib.sha256
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for leaf in leaves:
            sha(b"\x00" + leaf).digest()
        best = min(best, time.perf_counter() - started)
    return len(leaves) / best


def sample_leaves(count: int) -> list[bytes]:
    now = datetime.now(UTC)
    return [leaf_bytes(prepare(entry(n), now).body, n) for n in range(count)]


def bare_commit_rate(url: str, batch: int, rounds: int, synchronous: str) -> float:
    """Rows/s of a bare INSERT of ``batch`` leaf-sized rows and a COMMIT, per round."""
    engine = sa.create_engine(url)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi: object, _record: object) -> None:
            cursor = dbapi.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

    table = f"bare_{uuid.uuid4().hex[:8]}"
    payload = b"x" * 700
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (i BIGINT PRIMARY KEY, leaf BYTEA)".replace(
                    "BYTEA", "BLOB" if engine.dialect.name == "sqlite" else "BYTEA"
                )
            )
        )
    insert = sa.text(f"INSERT INTO {table} VALUES (:i, :leaf)")  # noqa: S608
    started = time.perf_counter()
    for r in range(rounds):
        with engine.begin() as conn:
            conn.execute(insert, [{"i": r * batch + j, "leaf": payload} for j in range(batch)])
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()
    return rounds * batch / elapsed


def run_threads(threads: list[threading.Thread]) -> float:
    """Start ``threads`` together and return the seconds until the last has finished."""
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def handoff_rate(writers: int, per_writer: int) -> float:
    """Round trips/s of ``writers`` threads each handing a held lock to one collector
    thread and waiting until it is released: the log's hand-over (``audit.log._Waiter``)
    with no entry and no database, which bounds any log that synchronous callers on
    threads wait on in one CPython process."""
    inbox: queue.SimpleQueue[threading.Lock | None] = queue.SimpleQueue()

    def collector() -> None:
        while True:
            waiting = [inbox.get()]
            while True:
                try:
                    waiting.append(inbox.get_nowait())
                except queue.Empty:
                    break
            for lock in waiting:
                if lock is None:
                    return
                lock.release()

    def caller() -> None:
        for _ in range(per_writer):
            lock = threading.Lock()
            lock.acquire()
            inbox.put(lock)
            lock.acquire()

    serving = threading.Thread(target=collector)
    serving.start()
    threads = [threading.Thread(target=caller) for _ in range(writers)]
    elapsed = run_threads(threads)
    inbox.put(None)
    serving.join()
    return writers * per_writer / elapsed


def rows_only_rate(url: str, batch: int, synchronous: str, seconds: float = 3.0) -> float:
    """Entries/s of the log's own transactions of ``batch`` ready entries (every row the
    log writes for them), one after another on one thread: no callers to hand over to."""
    signer = NoteSigner.generate(DEFAULT_ORIGIN)
    AuditLog.open(url, signer, sqlite_synchronous=synchronous).close()
    store = Store.open(url, sqlite_synchronous=synchronous)
    now = datetime.now(UTC)
    ready = [prepare(entry(n), now) for n in range(batch)]
    done = 0
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        store.append_batch(ready, 0)
        done += batch
    elapsed = time.perf_counter() - began
    store.close()
    return done / elapsed


def append_run(
    url: str, writers: int, per_writer: int, synchronous: str
) -> tuple[float, list[float], int]:
    """Appends/s with ``writers`` threads, and append-to-signed-checkpoint latencies."""
    signer = NoteSigner.generate(DEFAULT_ORIGIN)
    log = AuditLog.open(url, signer, sqlite_synchronous=synchronous)
    # The callers' entries exist before the clock starts: building an Entry is the
    # caller's work, not the log's. Each writer keeps its own record of when it asked,
    # so the measurement adds no lock the writers would contend for.
    work = [[entry(w * per_writer + i) for i in range(per_writer)] for w in range(writers)]
    asked: list[list[tuple[int, float]]] = [[] for _ in range(writers)]

    def writer(w: int) -> None:
        record = asked[w].append
        for item in work[w]:
            wall = time.time()
            record((log.append(item), wall))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    elapsed = run_threads(threads)
    started_at = {index: wall for record in asked for index, wall in record}
    log.receipt(max(started_at), timeout=10)
    with log.store.read() as conn:
        signed = sorted(
            (int(size), int(at) / 1e6)
            for size, at in conn.execute(
                sa.text("SELECT size, signed_at_us FROM audit_checkpoints")
            )
        )
    log.close()
    latencies = []
    position = 0
    for index in sorted(started_at):
        while signed[position][0] <= index:
            position += 1
        latencies.append(signed[position][1] - started_at[index])
    return len(started_at) / elapsed, latencies, len(signed)


def append_run_async(url: str, writers: int, per_writer: int, synchronous: str) -> float:
    """Appends/s with ``writers`` asyncio tasks on one event loop, each awaiting
    ``append_async`` in turn: how the broker's family queries append."""
    log = AuditLog.open(url, NoteSigner.generate(DEFAULT_ORIGIN), sqlite_synchronous=synchronous)
    work = [[entry(w * per_writer + i) for i in range(per_writer)] for w in range(writers)]

    async def writer(items: list[Entry]) -> None:
        for item in items:
            await log.append_async(item)

    async def run() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(writer(items) for items in work))
        return time.perf_counter() - began

    try:
        elapsed = asyncio.run(run())
    finally:
        log.close()
    return writers * per_writer / elapsed


def build_log(url: str, count: int, batch: int = 1000) -> tuple[Store, NoteSigner, float]:
    """``count`` entries in batches of ``batch``, a signed checkpoint after each batch."""
    signer = NoteSigner.generate(DEFAULT_ORIGIN)
    AuditLog.open(url, signer, sqlite_synchronous="NORMAL").close()
    store = Store.open(url, sqlite_synchronous="NORMAL")
    now = datetime.now(UTC)
    variety = [prepare(entry(n), now) for n in range(batch)]
    started = time.perf_counter()
    for first in range(0, count, batch):
        size = min(count, first + batch)
        store.append_batch(variety[: size - first], 0)
        note = sign_checkpoint(Checkpoint(DEFAULT_ORIGIN, size, store.root_at(size)), signer)
        store.add_checkpoint(size, note, 0)
    return store, signer, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def spread(seconds: list[float], digits: int) -> str:
    p50, p99 = (percentile(seconds, f) * 1000 for f in (0.5, 0.99))
    return f"p50 {p50:.{digits}f} ms, p99 {p99:.{digits}f} ms"


def bare_scan_rate(store: Store) -> float:
    """Rows/s of the verifier's own scan query, fetching and discarding the rows."""
    with store.read() as conn:
        driver = conn.connection.driver_connection
        if store.is_postgres:
            cursor = driver.cursor(name="bare_scan", binary=True)  # type: ignore[union-attr]
        else:
            cursor = driver.cursor()  # type: ignore[union-attr]
        started = time.perf_counter()
        cursor.execute("SELECT idx, leaf, leaf_hash FROM audit_entries ORDER BY idx")
        count = 0
        while rows := cursor.fetchmany(16384):
            count += len(rows)
        elapsed = time.perf_counter() - started
        cursor.close()
    return count / elapsed


def raw_beside(rate: float) -> str:
    """The raw SHA-256 baseline, as every row states it."""
    return f"raw SHA-256 of the same leaves, one thread, same run: {rate:,.0f}/s"


def bench_appends(
    urls: tuple[str, str, str],
    backend: str,
    synchronous: str,
    leaves: list[bytes],
    *,
    writers: int,
    per: int,
) -> None:
    """``urls``: empty databases for the threads' log, the asyncio tasks' log and the
    own-rows baseline."""
    url, async_url, rows_url = urls
    raw = raw_beside(sha256_rate(leaves))
    bare = bare_commit_rate(url, writers, max(20, per // 2), synchronous)
    rows = rows_only_rate(rows_url, writers, synchronous)
    handoff = handoff_rate(writers, per)
    rate, latencies, checkpoints = append_run(url, writers, per, synchronous)
    async_rate = append_run_async(async_url, writers, per, synchronous)
    durability = {"FULL": "fsync per commit", "NORMAL": "WAL, no fsync"}.get(synchronous, "")
    label = f"{backend} ({durability})" if backend == "sqlite" else backend
    target = ">= 20,000/s" if backend == "sqlite" else ">= 5,000/s"
    row(
        f"durable appends/s, {label}",
        f"{rate:,.0f}/s (bare INSERT+COMMIT of {writers} rows: {bare:,.0f} rows/s)",
        target,
        f"{writers} writer threads x {per} appends, {MACHINE}; {raw}",
    )
    row(
        f"durable appends/s, asyncio writers, {label}",
        f"{async_rate:,.0f}/s",
        target,
        f"{writers} asyncio tasks on one event loop x {per} appends (as the broker appends),"
        f" {MACHINE}; {raw}",
    )
    row(
        f"baselines for the appends above, {label}",
        f"the log's own rows, {writers} entries a transaction on one thread: {rows:,.0f}/s;"
        f" {writers} threads handing a lock to one and back, no entry, no database:"
        f" {handoff:,.0f}/s",
        "-",
        "same run; the appends above can exceed neither",
    )
    row(
        f"append to signed checkpoint, {label}",
        spread(latencies, 0),
        "p99 <= 1 s",
        f"{len(latencies)} appends, {checkpoints} checkpoints (200 ms / 1000 entries); {raw}",
    )


def bench_verify_and_prove(url: str, backend: str, count: int, leaves: list[bytes]) -> None:
    store, signer, build_seconds = build_log(url, count)
    # Baselines right before the run they compare with: the machine is shared.
    raw = sha256_rate(leaves)
    scan = bare_scan_rate(store)
    report = verify_store(store, signer.verifier())
    # What the verifier chose for this log (worker processes only above a size).
    processes = DatabaseSource(store)._workers_for(count)[0]
    workers = f"{processes} worker processes" if processes > 1 else "one process"
    assert report.ok, report.findings[:3]
    rate = report.entries / report.seconds
    row(
        f"verify, {backend}",
        f"{rate:,.0f} entries/s = {rate / raw:.0%} of raw SHA-256 ({raw:,.0f} leaves/s);"
        f" bare scan of the same rows {scan:,.0f} rows/s",
        ">= 300,000/s and >= 40% of raw SHA-256",
        f"{report.entries:,} entries ~760 B, {report.checkpoints:,} checkpoints,"
        f" {workers}; raw SHA-256 on one thread;"
        f" built in {build_seconds:.0f} s",
    )
    log = AuditLog(store, signer)
    rng = random.Random(7)
    timings = []
    for _ in range(1000):
        index = rng.randrange(count)
        began = time.perf_counter()
        log.inclusion_proof(index, count)
        timings.append(time.perf_counter() - began)
    log.close()
    store.close()
    row(
        f"inclusion proof generation, {backend}",
        spread(timings, 2),
        "p50 <= 1 ms",
        f"1,000 random indexes in a tree of {count:,}; {raw_beside(raw)}",
    )


def postgres_schema(base: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return url.render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds not minutes")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL to benchmark on (a scratch schema is created and dropped)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    writers = 32
    per = 40 if args.quick else 400
    verify_count = 20_000 if args.quick else 1_000_000
    pg_verify_count = 20_000 if args.quick else 200_000

    leaves = sample_leaves(2_000 if args.quick else 20_000)
    raw = sha256_rate(leaves)
    print(f"leaf size {statistics.mean(map(len, leaves)):.0f} bytes; raw SHA-256 {raw:,.0f}/s\n")
    print("| figure | value | target | setup |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for synchronous in ("FULL", "NORMAL"):
            threads, tasks, rows = (
                f"sqlite:///{Path(scratch) / f'{use}-{synchronous}.db'}"
                for use in ("threads", "tasks", "rows")
            )
            bench_appends(
                (threads, tasks, rows), "sqlite", synchronous, leaves, writers=writers, per=per
            )
        bench_verify_and_prove(
            f"sqlite:///{Path(scratch) / 'verify.db'}", "sqlite", verify_count, leaves
        )
    if not args.no_postgres:
        schemas = [postgres_schema(args.postgres_url) for _ in range(3)]
        try:
            urls = (schemas[0][0], schemas[1][0], schemas[2][0])
            bench_appends(urls, "postgresql", "FULL", leaves, writers=writers, per=per)
        finally:
            for _, drop in schemas:
                drop()
        url, drop = postgres_schema(args.postgres_url)
        try:
            bench_verify_and_prove(url, "postgresql", pg_verify_count, leaves)
        finally:
            drop()


if __name__ == "__main__":
    main()
