"""The connector's own audit log: every exchange it served, refused or rejected.

Events go into an ``audit.AuditLog`` (the same Merkle log the broker keeps) whose
checkpoints are signed with the agency's own key, so the agency can prove to anyone
what it released, and ``junction audit verify`` checks it offline. Local references are
recorded as keyed HMACs (``audit.entry.subject_reference``) under a key derived from the
agency's private key, so "what did we release about this person" is a lookup while the
log itself names nobody.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import serialization

from audit.checkpoint import NoteSigner
from audit.entry import Decision, Entry, Kind, subject_reference
from audit.errors import AuditError
from audit.log import AuditLog
from connectors.errors import ConfigError, LocalAuditUnavailable
from connectors.protocol.keys import KeyPair
from connectors.service.ports import AuditEvent, AuditKind

__all__ = ["AuditLogRecorder", "local_log_origin", "subject_key_for"]

_KINDS = {
    AuditKind.MATCH: Kind.MATCH,
    AuditKind.FETCH: Kind.FETCH,
    AuditKind.REFUSAL: Kind.REFUSAL,
    # A rejected envelope is the connector refusing to deal at all.
    AuditKind.REJECTION: Kind.REFUSAL,
}


def local_log_origin(agency_id: str) -> str:
    """The origin line (and key name) of an agency's local log checkpoints."""
    return f"junction.connector/{agency_id}"


def subject_key_for(key: KeyPair) -> bytes:
    """The HMAC key for local references, derived from (and as secret as) the agency key."""
    raw = key.private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return hmac.new(raw, b"junction local audit subjects", hashlib.sha256).digest()


def _decision(event: AuditEvent) -> Decision:
    if event.decision in ("refused", "rejected"):
        return Decision.DENY
    if any(reason.startswith(("field:", "person:")) for reason in event.reasons):
        return Decision.PARTIAL
    return Decision.ALLOW


class AuditLogRecorder:
    """Records ``AuditEvent``s in an ``AuditLog``; implements ``LocalAudit``."""

    def __init__(self, log: AuditLog, *, agency_id: str, subject_key: bytes) -> None:
        self.log = log
        self._agency_id = agency_id
        self._subject_key = subject_key

    @classmethod
    def open(
        cls, url: str, key: KeyPair, *, agency_id: str, checkpoint_interval: float = 0.2
    ) -> AuditLogRecorder:
        """Open (creating) the local log at ``url``, signed with the agency ``key``.

        Raises ``ConfigError`` if the database cannot be opened or holds another log.
        """
        origin = local_log_origin(agency_id)
        try:
            log = AuditLog.open(
                url,
                NoteSigner(origin, key.private_key),
                origin=origin,
                checkpoint_interval=checkpoint_interval,
            )
        except AuditError as exc:
            raise ConfigError(f"the local audit log at {url}: {exc}") from None
        return cls(log, agency_id=agency_id, subject_key=subject_key_for(key))

    def entry_for(self, event: AuditEvent) -> Entry:
        """The audit entry an event becomes. Holds no personal data."""
        reasons = list(event.reasons)
        if event.decision_digest is not None:
            reasons.append(f"broker-decision:{event.decision_digest}")
        return Entry(
            kind=_KINDS[event.kind],
            actor=event.counterparty,
            actor_agency=event.requester_agency,
            counterparty_agency=self._agency_id,
            purpose=event.purpose,
            legal_basis=event.legal_basis,
            decision=_decision(event),
            reasons=tuple(reasons),
            fields_released=event.fields_released,
            subjects=tuple(
                subject_reference(self._subject_key, "local_ref", ref)
                for ref in dict.fromkeys(event.refs)
            ),
            request_digest=event.request_digest,
            response_digest=event.response_digest,
            policy_digest=event.policy_digest,
            query_id=event.query_id,
            exchange_id=event.exchange_id,
            time=event.at,
        )

    def record(self, event: AuditEvent) -> int:
        """Append the event; return its index once durable. Raises ``LocalAuditUnavailable``."""
        try:
            return self.log.append(self.entry_for(event))
        except AuditError as exc:
            raise LocalAuditUnavailable(
                f"the local audit log did not record the exchange ({exc}); nothing was sent"
            ) from None

    def subject(self, ref: str) -> str:
        """The reference under which ``ref`` appears in this log's entries."""
        return subject_reference(self._subject_key, "local_ref", ref)

    def close(self) -> None:
        self.log.close()
