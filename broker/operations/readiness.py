"""Readiness: can this broker serve requests now? Each check says what failed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from audit.errors import AuditError
from audit.log import AuditLog
from broker.db import Database
from broker.errors import NotReady
from broker.policy_admin.runner import PolicyThread
from policies.errors import PolicyError

__all__ = ["Readiness"]


@dataclass(frozen=True, slots=True)
class Readiness:
    """The checks ``GET /ready`` runs: the database, the audit log, the policy bundle."""

    db: Database
    audit: AuditLog
    policy: PolicyThread

    def check(self) -> dict[str, str]:
        """``{"database": "ok", ...}`` when all pass. Raises ``NotReady`` naming each failure."""
        checks: dict[str, Callable[[], str]] = {
            "database": self._database,
            "audit_log": self._audit_log,
            "policy": self._policy,
        }
        results: dict[str, str] = {}
        failed = []
        for name, check in checks.items():
            try:
                results[name] = check()
            except (sa.exc.SQLAlchemyError, AuditError, PolicyError, OSError) as exc:
                failed.append(name)
                results[name] = f"failed: {type(exc).__name__}"
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
        size = self.audit.store.size()
        return f"ok ({size} entries)"

    def _policy(self) -> str:
        return f"ok (bundle {self.policy.digest.removeprefix('sha256:')[:12]})"
