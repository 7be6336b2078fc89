"""Consent references: keyed HMACs of a person's identifiers, shared by broker and agencies.

A consent is recorded under the identifiers a caseworker knows; a family query may name
the person differently (name and date of birth only), and the agencies that hold the
person know identifiers the caseworker did not give. So each connector sends, with every
record it matches, the consent references of the identifiers that record holds, and the
broker makes the same references of the identifiers a consent was recorded under. Equal
references mean the same identifier, without the identifier crossing the wire.

The key is shared by the broker and the connectors, and by nobody else. It is not the
linkage key (the broker never holds that) nor the broker's subject reference key (the
agencies never hold that), so neither side learns more from it than it already could.
Only identifiers that name one person are used: NHS number, UPN and NI number, never a
UPRN (a household shares it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from connectors.protocol.identifiers import canonical

__all__ = ["CONSENT_KINDS", "ConsentKey", "consent_key_id"]

CONSENT_KINDS = ("nhs_number", "upn", "ni_number")
"""The identifier kinds a consent reference is made of: each names one person."""

_DOMAIN = b"junction consent reference v1\x00"


def consent_key_id(secret: bytes) -> str:
    """A public name for a consent key: the first 16 hex digits of a hash of it."""
    return "ck-" + hashlib.sha256(_DOMAIN + secret).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ConsentKey:
    """The secret the broker and every connector make consent references with."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ValueError("a consent key needs at least 32 bytes of secret")

    @property
    def key_id(self) -> str:
        return consent_key_id(self.secret)

    def ref(self, kind: str, value: str) -> str | None:
        """The reference of one identifier, or None when ``kind`` names no one person or
        ``value`` is not an identifier of that kind (an agency's typing mistake must not
        stop its answer, and cannot match a consent)."""
        if kind not in CONSENT_KINDS:
            return None
        try:
            written = canonical(kind, value)
        except ValueError:
            return None
        message = _DOMAIN + f"{kind}\x00{written}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def refs(self, identifiers: Mapping[str, str]) -> list[str]:
        """The references of every identifier that makes one, sorted."""
        made = (self.ref(kind, value) for kind, value in identifiers.items())
        return sorted({ref for ref in made if ref is not None})
