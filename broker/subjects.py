"""Keyed subject references: how the broker names a person without holding their record.

A reference is HMAC-SHA256 under the broker's secret key over an identifier kind and
its canonical value (``connectors.protocol.identifiers.canonical``, then
``audit.entry.subject_reference``). The consent register stores only these, the audit
log files entries under them, and an IG officer finds a person's entries by computing
them again from the identifiers, however they were typed. The key lives in ``data_dir``
(mode 0600); losing it makes existing references unfindable, so back it up with the
database.

Consent is also filed under consent references (``connectors.protocol.consent_refs``):
HMACs under a second key, the consent key, which the broker shares with the agencies'
connectors. A connector sends the consent references of the identifiers each matched
record holds, so a consent recorded under an NHS number is found by a query that names
the person by name and date of birth only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from audit.entry import subject_reference
from audit.errors import EntryError
from broker.errors import ConfigurationError, InvalidChange
from connectors.protocol.consent_refs import ConsentKey
from connectors.protocol.identifiers import canonical

__all__ = [
    "CONSENT_KEY_PREFIX",
    "IDENTIFIER_KINDS",
    "SubjectKeys",
    "consent_key_id_of",
    "consent_register_key",
]

CONSENT_KEY_PREFIX = "c:"
"""How the consent register tells a consent reference from a subject reference."""

IDENTIFIER_KINDS = ("nhs_number", "upn", "ni_number", "local_ref")
"""The kinds of identifier a person's reference is made from (a UPRN names a home)."""
_KEY_BYTES = 32


def _load_or_create(path: Path, what: str) -> bytes:
    """The secret in ``path`` (hex), created with mode 0600 if missing.

    Raises ``ConfigurationError`` if the file cannot be read or holds no key.
    """
    if not path.exists():
        try:
            _create(path)
        except FileExistsError:
            pass  # another process created it first; read theirs
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the {what} {path}: {exc.strerror or exc}"
            ) from None
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the {what} {path}: {exc}") from None


def _create(path: Path) -> None:
    """A new random key in ``path``, readable by its owner only; ``FileExistsError`` if
    there is one already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(_KEY_BYTES) + "\n")


def consent_key_id_of(path: Path) -> str | None:
    """The id of the consent key in ``path``, or None if there is none yet (nothing is
    created). Raises ``ConfigurationError`` if the file cannot be read or holds no key."""
    if not path.exists():
        return None
    try:
        return ConsentKey(_load_or_create(path, "consent key")).key_id
    except ValueError as exc:
        raise ConfigurationError(f"the consent key {path}: {exc}") from None


def consent_register_key(consent_ref: str) -> str:
    """How the consent register files a consent reference: marked, and as long as a
    subject reference (62 of its 64 hex digits are ample to tell people apart)."""
    return CONSENT_KEY_PREFIX + consent_ref[: 64 - len(CONSENT_KEY_PREFIX)]


class SubjectKeys:
    """Makes subject references with one secret key, and consent references with the
    consent key when there is one."""

    def __init__(self, key: bytes, consent_key: bytes | None = None) -> None:
        if len(key) < 16:
            raise ConfigurationError("the subject reference key must be at least 16 bytes")
        self._key = key
        self._consent: ConsentKey | None = None
        if consent_key is not None:
            try:
                self._consent = ConsentKey(consent_key)
            except ValueError as exc:
                raise ConfigurationError(f"the consent key: {exc}") from None

    @classmethod
    def load_or_create(cls, path: Path, consent_key_path: Path | None = None) -> SubjectKeys:
        """The subject reference key in ``path`` and the consent key in
        ``consent_key_path`` (hex), each created with mode 0600 if missing.

        Raises ``ConfigurationError`` if a file cannot be read or holds no key.
        """
        key = _load_or_create(path, "subject reference key")
        if consent_key_path is None:
            return cls(key)
        return cls(key, _load_or_create(consent_key_path, "consent key"))

    @property
    def consent_key_id(self) -> str | None:
        """The public name of the consent key, as connectors' manifests announce it."""
        return self._consent.key_id if self._consent else None

    def held_reference(self, consent_ref: str) -> str:
        """The subject reference the audit log files an agency's record under, made of a
        consent reference the agency sent for an identifier the record holds: so an IG
        officer asking by NHS number finds the exchanges about that person's records even
        when the caseworker asked by name and date of birth."""
        return subject_reference(self._key, "held_identifier", consent_ref)

    def held_references(self, identifiers: Iterable[tuple[str, str]]) -> list[str]:
        """``held_reference`` of each ``(kind, value)`` identifier that makes a consent
        reference, sorted; none without a consent key."""
        if self._consent is None:
            return []
        made = (self._consent.ref(kind, value) for kind, value in identifiers)
        return sorted({self.held_reference(ref) for ref in made if ref is not None})

    def consent_keys(self, identifiers: Iterable[tuple[str, str]]) -> list[str]:
        """The consent register's keys for the consent references of ``(kind, value)``
        identifiers that name one person (a ``local_ref`` or a UPRN makes none), sorted;
        none without a consent key."""
        if self._consent is None:
            return []
        made = (self._consent.ref(kind, value) for kind, value in identifiers)
        return sorted({consent_register_key(ref) for ref in made if ref is not None})

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
