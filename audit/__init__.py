"""Junction's signed, verifiable audit log: an RFC 6962 Merkle tree with signed checkpoints.

The names below are the package's interface; everything else is an implementation
detail of the modules that define them.
"""

from pathlib import Path

from audit._dbsource import verify_store
from audit.checkpoint import Checkpoint, NoteSigner, NoteVerifier, cosign, open_checkpoint
from audit.entry import Decision, Entry, Erasure, Kind, StoredEntry, subject_reference
from audit.errors import AuditError
from audit.export import BundleSource, export_bundle
from audit.log import DEFAULT_ORIGIN, AuditLog, Receipt
from audit.search import Page, SearchQuery
from audit.verify import Finding, Report, TamperKind, verify_source

__all__ = [
    "DEFAULT_ORIGIN",
    "AuditError",
    "AuditLog",
    "BundleSource",
    "Checkpoint",
    "Decision",
    "Entry",
    "Erasure",
    "Finding",
    "Kind",
    "NoteSigner",
    "NoteVerifier",
    "Page",
    "Receipt",
    "Report",
    "SearchQuery",
    "StoredEntry",
    "TamperKind",
    "cosign",
    "export_bundle",
    "open_checkpoint",
    "subject_reference",
    "verify_bundle",
    "verify_source",
    "verify_store",
]


def verify_bundle(path: Path, verifier: NoteVerifier) -> Report:
    """Verify an exported bundle, trusting only ``verifier``'s key."""
    source = BundleSource(path)
    return verify_source(source, verifier, source.origin or verifier.name)
