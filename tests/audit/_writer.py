"""A separate process that appends to a log from several threads, printing each index.

Usage: python _writer.py DATABASE_URL KEY_FILE THREADS PER_THREAD (0: until killed).
Each index is printed and flushed only after ``append`` returned it, so whatever the
parent reads was durable by the log's promise.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit import DEFAULT_ORIGIN, AuditLog, NoteSigner
from tests.audit.conftest import make_entry


def main() -> None:
    url, key_file, threads, per_thread = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:5])
    log = AuditLog.open(
        url, NoteSigner.from_pem(key_file, DEFAULT_ORIGIN), checkpoint_interval=0.05
    )
    lock = threading.Lock()

    def writer(w: int) -> None:
        i = 0
        while per_thread == 0 or i < per_thread:
            index = log.append(make_entry(w * 1_000_000 + i))
            with lock:
                sys.stdout.write(f"{index}\n")
                sys.stdout.flush()
            i += 1

    workers = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    log.close()


if __name__ == "__main__":
    main()
