"""Keyed subject references: how the broker names a person without holding their record.

A reference is HMAC-SHA256 under the broker's secret key over an identifier kind and
its canonical value (``broker.identifiers.canonical``, then
``audit.entry.subject_reference``). The consent register stores only these, the audit
log files entries under them, and an IG officer finds a person's entries by computing
them again from the identifiers, however they were typed. The key lives in ``data_dir``
(mode 0600); losing it makes existing references unfindable, so back it up with the
database.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from audit.entry import subject_reference
from audit.errors import EntryError
from broker.errors import ConfigurationError, InvalidChange
from broker.identifiers import canonical

__all__ = ["IDENTIFIER_KINDS", "SubjectKeys"]

IDENTIFIER_KINDS = ("nhs_number", "upn", "ni_number", "local_ref")
"""The kinds of identifier a person's reference is made from (a UPRN names a home)."""
_KEY_BYTES = 32


class SubjectKeys:
    """Makes subject references with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ConfigurationError("the subject reference key must be at least 16 bytes")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> SubjectKeys:
        """The key in ``path`` (hex), created with mode 0600 if missing.

        Raises ``ConfigurationError`` if the file cannot be read or holds no key.
        """
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; read theirs
            else:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(_KEY_BYTES) + "\n")
        try:
            return cls(bytes.fromhex(path.read_text().strip()))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read the subject reference key {path}: {exc}"
            ) from None

    def reference(self, kind: str, value: str) -> str:
        """The reference of one identifier, made from its canonical form.

        ``local_ref`` values read ``"<agency>:<ref>"``. Raises ``InvalidChange`` for an
        unknown kind or a value that is not an identifier of that kind.
        """
        if kind not in IDENTIFIER_KINDS:
            raise InvalidChange(
                f"identifier kind {kind!r} is not known; use one of {', '.join(IDENTIFIER_KINDS)}"
            )
        try:
            written = canonical(kind, value)
        except ValueError as exc:
            raise InvalidChange(str(exc)) from None
        try:
            return subject_reference(self._key, kind, written)
        except EntryError as exc:
            raise InvalidChange(f"identifier {kind}: {exc}") from None
