"""Writing one audit entry for a change to the registry or the consent register, or
for a read of a person's records.

A change's entry is written BEFORE the change is stored, so no change is ever unlogged;
a change that then fails to store leaves an entry for an attempt, and the caller is
told. Writing it inside the database transaction is not an option: on SQLite the audit
writer shares the file and would wait on the transaction's own write lock. A read's
entry is written once the answer is ready and before it is given, so nothing is shown
that the log does not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.entry import Decision, Entry, Kind
from audit.errors import AuditError
from audit.log import AuditLog
from broker.errors import StoreUnavailable
from broker.identity.principal import Principal
from connectors.protocol.envelope import body_digest

__all__ = ["record_change", "record_read"]


def record_change(
    log: AuditLog,
    kind: Kind,
    actor: Principal,
    *,
    action: str,
    change: Mapping[str, Any],
    names: Sequence[str] = (),
    counterparty_agency: str | None = None,
    purpose: str | None = None,
    subjects: tuple[str, ...] = (),
    private: Mapping[str, str] | None = None,
) -> int:
    """Append the entry for ``change``; return its index.

    ``change`` is digested (its RFC 8785 SHA-256 goes in the leaf), never stored in
    clear. ``names`` follow ``action`` in the entry's reasons, in clear: what the change
    was made to, where no agency field says it (never personal data). Raises
    ``StoreUnavailable`` if the log cannot take the entry: the change must then not be
    made.
    """
    entry = Entry(
        kind=kind,
        actor=actor.subject,
        actor_agency=actor.agency,
        counterparty_agency=counterparty_agency,
        purpose=purpose,
        decision=Decision.ALLOW,
        reasons=(action, *names),
        subjects=subjects,
        request_digest=body_digest(change),
        private=dict(private or {}),
    )
    try:
        return log.append(entry)
    except AuditError as exc:
        raise StoreUnavailable(
            f"the audit log could not record this change, so it was not made: {exc}"
        ) from None


def record_read(
    log: AuditLog,
    kind: Kind,
    actor: Principal,
    *,
    action: str,
    subjects: Sequence[str],
    request: Mapping[str, Any],
    purpose: str | None = None,
) -> int:
    """Append the entry for ``actor`` reading the records of the person whose keyed
    references are ``subjects``; return its index.

    The entry is filed under ``subjects``; ``request`` is what was asked besides the
    identifiers, digested with the references (no identifier goes in the leaf). Raises
    ``StoreUnavailable`` if the log cannot take the entry: what was read must then not
    be shown.
    """
    entry = Entry(
        kind=kind,
        actor=actor.subject,
        actor_agency=actor.agency,
        purpose=purpose,
        decision=Decision.ALLOW,
        reasons=(action,),
        subjects=tuple(subjects),
        request_digest=body_digest({**request, "subjects": list(subjects)}),
    )
    try:
        return log.append(entry)
    except AuditError as exc:
        raise StoreUnavailable(
            f"the audit log could not record this read, so nothing is shown: {exc}"
        ) from None
