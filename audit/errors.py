"""The audit package's errors: one tree, each with a stable code and a fix in its detail.

The attribute names (``code``, ``title``, ``status``, ``detail``) are those every Junction
error carries, so a web layer can render any of them as RFC 9457 problem+json.
"""

from __future__ import annotations

from typing import ClassVar

from audit._report import Finding

__all__ = [
    "AuditError",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointSignatureError",
    "CheckpointUnknownSigner",
    "EntryError",
    "EntryNotFound",
    "LogClosed",
    "LogDamaged",
    "OutputError",
    "ProofError",
    "ReceiptTimeout",
    "StoreError",
    "TreeSizeError",
]


class AuditError(Exception):
    """Base of every error the audit log raises."""

    code: ClassVar[str] = "audit-error"
    title: ClassVar[str] = "Audit log error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EntryError(AuditError):
    """An entry is not valid: a field is missing, malformed, or not a permitted value."""

    code = "audit-entry-invalid"
    title = "Invalid audit entry"
    status = 422


class EntryNotFound(AuditError):
    """No entry has the index asked for."""

    code = "audit-entry-not-found"
    title = "Audit entry not found"
    status = 404


class ProofError(AuditError):
    """A proof cannot be produced, or does not verify."""

    code = "audit-proof-invalid"
    title = "Proof does not verify"
    status = 422


class TreeSizeError(ProofError):
    """A proof was asked for a tree size the log has not reached or not signed."""

    code = "audit-tree-size"
    title = "Tree size out of range"
    status = 400


class CheckpointError(AuditError):
    """A checkpoint cannot be trusted."""

    code = "audit-checkpoint-invalid"
    title = "Invalid checkpoint"
    status = 422


class CheckpointFormatError(CheckpointError):
    """The text is not a C2SP checkpoint in signed-note form."""

    code = "audit-checkpoint-malformed"
    title = "Malformed checkpoint"


class CheckpointSignatureError(CheckpointError):
    """The checkpoint is not signed by the log key, or its signature is wrong."""

    code = "audit-checkpoint-signature"
    title = "Checkpoint signature does not verify"


class CheckpointUnknownSigner(CheckpointSignatureError):
    """The checkpoint carries no signature by the log key: another key signed it."""

    code = "audit-checkpoint-unknown-signer"
    title = "Checkpoint not signed by the log key"


class StoreError(AuditError):
    """The database could not be opened, migrated, read or written."""

    code = "audit-store-unavailable"
    title = "Audit store unavailable"
    status = 503


class LogDamaged(AuditError):
    """The log holds what no Junction log writes, so it cannot be read as asked:
    ``finding`` says what and where, as the verifier would report it."""

    code = "audit-log-damaged"
    title = "Audit log damaged"
    status = 422

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.detail)
        self.finding = finding


class OutputError(AuditError):
    """A file was not written: it exists, it is the log's own database, or writing failed."""

    code = "audit-output-refused"
    title = "File not written"
    status = 409


class LogClosed(AuditError):
    """The log was closed; nothing more can be appended through this handle."""

    code = "audit-log-closed"
    title = "Audit log closed"
    status = 503


class ReceiptTimeout(AuditError):
    """No signed checkpoint covered the entry within the time allowed."""

    code = "audit-receipt-timeout"
    title = "Receipt not ready"
    status = 504
