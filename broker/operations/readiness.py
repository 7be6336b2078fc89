"""Readiness: can this broker serve requests now? Each check says what failed.

The audit log is ready while its database answers and its writer runs; the policy
while its engine can decide (an OPA server is asked whether it still holds the bundle).

A database that stops answering (a network dropping packets, a server stuck) would hold
a check for minutes: each runs on a thread of its own, and ``/ready`` waits for it only
up to a timeout, then names it as failed. A check still waiting from an earlier probe is
waited on again, never started twice, so probes that keep coming start no more threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from audit.errors import AuditError
from audit.log import AuditLog
from broker.db import Database
from broker.errors import NotReady
from broker.policy_admin.runner import PolicyThread
from policies.errors import PolicyError

__all__ = ["Readiness"]

_FAILURES = (sa.exc.SQLAlchemyError, AuditError, PolicyError, OSError)


class _Check:
    """One run of one check, on a daemon thread: its result once ``done`` is set."""

    def __init__(self, check: Callable[[], str]) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        # Kept if the check raises what it should not: the broker is not ready then either.
        self.result = "failed: the check stopped"
        thread = threading.Thread(target=self._run, args=(check,), daemon=True)
        thread.start()

    def _run(self, check: Callable[[], str]) -> None:
        try:
            self.result = check()
        except _FAILURES as exc:
            self.result = f"failed: {type(exc).__name__}"
        finally:
            self.done.set()


class Readiness:
    """The checks ``GET /ready`` runs: the database, the audit log, the policy bundle."""

    def __init__(
        self, db: Database, audit: AuditLog, policy: PolicyThread, *, timeout: float = 5.0
    ) -> None:
        """``timeout``: how long ``check`` waits for the checks, in seconds."""
        self.db = db
        self.audit = audit
        self.policy = policy
        self._timeout = timeout
        self._lock = threading.Lock()
        self._running: dict[str, _Check] = {}

    def check(self) -> dict[str, str]:
        """``{"database": "ok", ...}`` when all pass, within the timeout.

        Raises ``NotReady`` naming each failure, a check that gave no answer in time
        included.
        """
        checks: dict[str, Callable[[], str]] = {
            "database": self._database,
            "audit_log": self._audit_log,
            "policy": self._policy,
        }
        with self._lock:
            for name, check in checks.items():
                if name not in self._running:
                    self._running[name] = _Check(check)
            running = {name: self._running[name] for name in checks}
        deadline = time.monotonic() + self._timeout
        results: dict[str, str] = {}
        failed = []
        for name, run in running.items():
            if run.done.wait(max(0.0, deadline - time.monotonic())):
                with self._lock:
                    if self._running.get(name) is run:
                        del self._running[name]
                results[name] = run.result
            else:
                waited = time.monotonic() - run.started
                results[name] = f"failed: no answer in {waited:.0f} s"
            if results[name].startswith("failed"):
                failed.append(name)
        if failed:
            raise NotReady(
                f"not ready: {', '.join(failed)} unavailable; see checks, and the broker's log",
                checks=results,
            )
        return results

    def _database(self) -> str:
        with self.db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return "ok"

    def _audit_log(self) -> str:
        if self.audit.writer_failure is not None:
            return "failed: the log's writer has stopped"
        size = self.audit.store.size()
        return f"ok ({size} entries)"

    def _policy(self) -> str:
        # On the policy's own thread, as decisions are made: an OPA server is asked.
        self.policy.call(lambda service: service.probe())
        return f"ok (bundle {self.policy.digest.removeprefix('sha256:')[:12]})"
