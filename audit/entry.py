"""What one audit entry says, and how it becomes a leaf without personal data in clear.

A leaf is the RFC 8785 canonical JSON ``{"entry": {...}, "index": N, "v": 1}``. The entry
object holds only what may be kept for ever: kinds, agencies, purposes, reason codes,
digests, and keyed-HMAC subject references. Personal data and free text (a
justification, a case reference, a name) go in ``private``: the leaf carries a salted
commitment SHA-256(salt || UTF-8 value) of each, and the salt and value are stored
beside the leaf. Erasing an entry deletes them; the leaf, its hash and so the tree stay.

Carrying the index inside the leaf is what lets a verifier name the exact index of a
deleted, inserted or swapped entry instead of only noticing that a root is wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

from audit.canonical import CanonicalizationError, canonical_json_of_parsed
from audit.errors import EntryError

__all__ = [
    "Decision",
    "Entry",
    "Erasure",
    "Kind",
    "Opening",
    "PreparedEntry",
    "StoredEntry",
    "commitment",
    "format_time",
    "leaf_bytes",
    "parse_leaf",
    "prepare",
    "subject_reference",
]

LEAF_VERSION = 1
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Kind(StrEnum):
    """What crossed a boundary."""

    QUERY_SUBMITTED = "query_submitted"
    MATCH = "match"
    FETCH = "fetch"
    RELEASE = "release"
    REFUSAL = "refusal"
    CONSENT_CHANGE = "consent_change"
    BREAK_GLASS = "break_glass"
    LINK_CONFIRMED = "link_confirmed"
    POLICY_CHANGE = "policy_change"
    REGISTRY_CHANGE = "registry_change"
    ACCESS_REVIEW = "access_review"
    ERASURE = "erasure"
    AUDIT_ACCESS = "audit_access"
    """An IG officer read the audit records of a person (a search naming them, or a
    subject access report)."""
    CONSENT_LOOKUP = "consent_lookup"
    """Someone searched the consent register for a person."""


class Decision(StrEnum):
    """The outcome policy reached for the exchange."""

    ALLOW = "allow"
    PARTIAL = "partial"
    DENY = "deny"


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, the one spelling a leaf uses."""
    if moment.tzinfo is None:
        raise EntryError("entry times must carry a time zone; use datetime.now(UTC)")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def commitment(salt: bytes, value: str) -> str:
    """Hex SHA-256(salt || UTF-8 value): hides ``value`` while the 32-byte salt is secret."""
    return hashlib.sha256(salt + value.encode("utf-8")).hexdigest()


def subject_reference(key: bytes, identifier_kind: str, value: str) -> str:
    """Keyed reference to a person: hex HMAC-SHA256(key, kind NUL value).

    Whitespace is removed and case folded, so ``"943 476 5919"`` and ``"9434765919"``
    give the same reference. Without the key nobody can test a guessed identifier
    against the log. Raises ``EntryError`` for a key under 16 bytes or empty input.
    """
    if len(key) < 16:
        raise EntryError("the subject reference key must be at least 16 random bytes")
    kind = identifier_kind.strip().lower()
    normalised = "".join(value.split()).casefold()
    if not kind or not normalised:
        raise EntryError("a subject reference needs an identifier kind and a value")
    message = f"{kind}\x00{normalised}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One exchange, as the caller describes it. ``time`` defaults to the log's clock."""

    kind: Kind
    actor: str
    actor_agency: str | None = None
    counterparty_agency: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    decision: Decision | None = None
    reasons: tuple[str, ...] = ()
    fields_released: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    request_digest: str | None = None
    response_digest: str | None = None
    policy_digest: str | None = None
    query_id: str | None = None
    exchange_id: str | None = None
    erases: int | None = None
    time: datetime | None = None
    private: Mapping[str, str] = field(default_factory=dict)

    def public_fields(self) -> dict[str, Any]:
        """The leaf's ``entry`` object without commitments. Raises ``EntryError``."""
        if not self.actor or not isinstance(self.actor, str):
            raise EntryError("an entry needs the actor who caused it")
        try:
            kind = self.kind.value if isinstance(self.kind, Kind) else Kind(self.kind).value
            decision = self.decision
            if decision is not None:
                decision = decision if isinstance(decision, Decision) else Decision(decision)
        except ValueError as exc:
            raise EntryError(str(exc)) from None
        for subject in self.subjects:
            if not isinstance(subject, str) or not _HEX64.fullmatch(subject):
                raise EntryError("subjects must be references made by subject_reference()")
        for name in ("actor", "actor_agency", "counterparty_agency", "purpose", "query_id"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > 200):
                raise EntryError(f"{name} must be text of at most 200 characters")
        for name in (
            "legal_basis",
            "request_digest",
            "response_digest",
            "policy_digest",
            "exchange_id",
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise EntryError(f"{name} must be text")
        if self.erases is not None and (type(self.erases) is not int or self.erases < 0):
            raise EntryError("erases must be the index of an earlier entry")
        out: dict[str, Any] = {"kind": kind, "actor": self.actor}
        optional = {
            "actor_agency": self.actor_agency,
            "counterparty_agency": self.counterparty_agency,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "decision": None if decision is None else decision.value,
            "request_digest": self.request_digest,
            "response_digest": self.response_digest,
            "policy_digest": self.policy_digest,
            "query_id": self.query_id,
            "exchange_id": self.exchange_id,
            "erases": self.erases,
        }
        out.update({key: value for key, value in optional.items() if value is not None})
        for key, values in (
            ("reasons", self.reasons),
            ("fields_released", self.fields_released),
            ("subjects", self.subjects),
        ):
            if values:
                if not all(isinstance(value, str) for value in values):
                    raise EntryError(f"{key} must be a list of text")
                out[key] = list(values)
        return out


@dataclass(frozen=True, slots=True)
class Opening:
    """The secret half of a commitment: stored beside the leaf, deleted on erasure."""

    name: str
    salt: bytes
    value: str


@dataclass(slots=True)
class PreparedEntry:
    """An entry turned into bytes by the caller's thread, ready for any index."""

    body: bytes
    openings: tuple[Opening, ...]
    subjects: tuple[str, ...]
    time_us: int
    kind: str
    actor: str
    actor_agency: str | None
    counterparty_agency: str | None
    purpose: str | None
    decision: str | None
    query_id: str | None
    erases: int | None = None
    erasure_reason: str | None = None


class _SaltPool:
    """32-byte salts cut from larger reads of the system's random source.

    Every salt is fresh randomness from ``os.urandom``; reading 128 at a time spares
    each append a system call, which under many appending threads is also a release
    of the interpreter lock that the audit writer then has to wait to get back.
    """

    _BATCH = 128

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0

    def __call__(self) -> bytes:
        with self._lock:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = os.urandom(32 * self._BATCH), 0
            start = self._offset
            self._offset = start + 32
            return self._buffer[start : start + 32]

    def forget(self) -> None:
        """Drop unused salts (in a forked child, so it never shares them with its parent)."""
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0


_salt = _SaltPool()
os.register_at_fork(after_in_child=_salt.forget)


def prepare(entry: Entry, now: datetime) -> PreparedEntry:
    """Canonicalise ``entry``, commit to its private values. Raises ``EntryError``."""
    fields = entry.public_fields()
    moment = entry.time or now
    fields["time"] = format_time(moment)
    openings = []
    for name, value in sorted(entry.private.items()):
        if not _NAME.fullmatch(name) or not isinstance(value, str):
            raise EntryError(f"private field {name!r}: names are [a-z][a-z0-9_]*, values text")
        openings.append(Opening(name, _salt(), value))
    if openings:
        fields["commitments"] = {o.name: commitment(o.salt, o.value) for o in openings}
    try:
        # Every value is text, a list of text or an int by now (no floats), which is
        # what canonical_json_of_parsed expects.
        body = canonical_json_of_parsed(fields)
    except CanonicalizationError as exc:
        raise EntryError(f"the entry cannot be written as canonical JSON: {exc}") from None
    return PreparedEntry(
        body=body,
        openings=tuple(openings),
        subjects=tuple(dict.fromkeys(entry.subjects)),
        time_us=int(moment.timestamp() * 1_000_000),
        kind=fields["kind"],
        actor=entry.actor,
        actor_agency=entry.actor_agency,
        counterparty_agency=entry.counterparty_agency,
        purpose=entry.purpose,
        decision=fields.get("decision"),
        query_id=entry.query_id,
        erases=entry.erases,
        erasure_reason="; ".join(entry.reasons) if entry.erases is not None else None,
    )


def leaf_bytes(body: bytes, index: int) -> bytes:
    """The leaf for a prepared entry at ``index``; itself canonical JSON (keys sorted)."""
    return b'{"entry":%s,"index":%d,"v":%d}' % (body, index, LEAF_VERSION)


def parse_leaf(leaf: bytes) -> tuple[int, dict[str, Any]]:
    """Return ``(index, entry object)`` of a leaf. Raises ``EntryError`` if malformed."""
    try:
        data = orjson.loads(leaf)
        index, fields = data["index"], data["entry"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise EntryError("the leaf is not a Junction audit leaf") from None
    if type(index) is not int or not isinstance(fields, dict):
        raise EntryError("the leaf is not a Junction audit leaf")
    return index, fields


@dataclass(frozen=True, slots=True)
class Erasure:
    """Why an entry's private values are gone; itself recorded as entry ``erasure_index``."""

    erased_at: datetime
    erased_by: str
    reason: str
    erasure_index: int


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry read back from the log.

    ``fields`` is the leaf's entry object as signed (with ``commitments``); ``private``
    holds the opened values, empty once ``erasure`` is set.
    """

    index: int
    fields: Mapping[str, Any]
    private: Mapping[str, str]
    leaf_hash: bytes
    erasure: Erasure | None

    @property
    def kind(self) -> str:
        return str(self.fields["kind"])

    @property
    def time(self) -> datetime:
        return datetime.strptime(self.fields["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
