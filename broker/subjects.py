"""Keyed subject references: how the broker names a person without holding their record.

A reference is HMAC-SHA256 under the broker's secret key over an identifier kind and
value (``audit.entry.subject_reference``). The consent register stores only these, the
audit log files entries under them, and an IG officer finds a person's entries by
computing them again from the identifiers. The key lives in ``data_dir`` (mode 0600);
losing it makes existing references unfindable, so back it up with the database.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from audit.entry import subject_reference
from audit.errors import EntryError
from broker.errors import ConfigurationError, InvalidChange

__all__ = ["IDENTIFIER_KINDS", "SubjectKeys"]

IDENTIFIER_KINDS = ("nhs_number", "upn", "ni_number", "local_ref")
_LOCAL_REF = re.compile(r"[a-z][a-z0-9_-]{1,62}:\S.*")
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
        """The reference of one identifier.

        ``local_ref`` values read ``"<agency>:<ref>"``. Raises ``InvalidChange`` for an
        unknown kind or a malformed value.
        """
        if kind not in IDENTIFIER_KINDS:
            raise InvalidChange(
                f"identifier kind {kind!r} is not known; use one of {', '.join(IDENTIFIER_KINDS)}"
            )
        if kind == "local_ref" and not _LOCAL_REF.fullmatch(value.strip()):
            raise InvalidChange("a local_ref reads '<agency>:<reference>', e.g. 'council:C-1042'")
        try:
            return subject_reference(self._key, kind, value)
        except EntryError as exc:
            raise InvalidChange(f"identifier {kind}: {exc}") from None
