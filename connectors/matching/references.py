"""Opaque, stable local references to an agency's records.

A reference is the record's primary key under deterministic authenticated encryption
(AES-SIV, RFC 5297) with a key derived from the agency's secret: the same record always
gets the same reference, nobody without the secret can read the key out of it or forge
one, and the connector can turn a reference it issued back into the key at fetch time
without keeping any index of the data.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from connectors.errors import UnknownReference

__all__ = ["LocalReferences"]


class LocalReferences:
    """Issues and resolves one agency's references."""

    def __init__(self, agency_id: str, secret: bytes) -> None:
        """Raises ``ValueError`` when the secret is shorter than 32 bytes."""
        if len(secret) < 32:
            raise ValueError("an agency reference secret needs at least 32 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=64,
            salt=None,
            info=b"junction local references v1",
        ).derive(secret)
        self._siv = AESSIV(key)
        self._context = [agency_id.encode()]

    def ref(self, record_key: str) -> str:
        """The reference of a record key."""
        sealed = self._siv.encrypt(record_key.encode(), self._context)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def key(self, ref: str) -> str:
        """The record key a reference stands for.

        Raises:
            UnknownReference: the reference was not issued by this agency, or was altered.
        """
        unknown = UnknownReference("the reference was not issued by this agency")
        try:
            padded = ref + "=" * (-len(ref) % 4)
            sealed = base64.urlsafe_b64decode(padded.encode())
        except (binascii.Error, ValueError):
            raise unknown from None
        # One record, one spelling: base64 decoding skips characters outside its
        # alphabet and padding, and the local log keys people by the spelling.
        if base64.urlsafe_b64encode(sealed).rstrip(b"=").decode() != ref:
            raise unknown
        try:
            return self._siv.decrypt(sealed, self._context).decode()
        except (InvalidTag, ValueError, UnicodeError):
            raise unknown from None
