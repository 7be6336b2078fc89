"""Errors raised by the wire protocol: message validation and envelope verification.

Every envelope rejection has its own class so that a receiver can say precisely why it
refused a message, and a sender can fix the cause.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlteredBody",
    "BadSignature",
    "EnvelopeError",
    "Expired",
    "MalformedEnvelope",
    "MissingField",
    "NotYetValid",
    "ProtocolError",
    "Replayed",
    "UnknownKey",
    "WrongAudience",
    "WrongMessageType",
]


class ProtocolError(Exception):
    """Base of every protocol error. Carries what a problem+json body needs."""

    code: ClassVar[str] = "protocol-error"
    title: ClassVar[str] = "The message does not follow the Junction protocol"
    status: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class EnvelopeError(ProtocolError):
    """A signed envelope was refused. Subclasses name the reason."""

    code = "envelope-rejected"
    title = "The signed envelope was rejected"
    status = 401


class MalformedEnvelope(EnvelopeError):
    code = "envelope-malformed"
    title = "The envelope is not valid JSON of the expected shape"
    status = 400


class MissingField(EnvelopeError):
    code = "envelope-missing-field"
    title = "The envelope lacks a required field"
    status = 400


class UnknownKey(EnvelopeError):
    code = "envelope-unknown-key"
    title = "The envelope is signed by a key this receiver does not know"


class BadSignature(EnvelopeError):
    code = "envelope-bad-signature"
    title = "The envelope's signature does not verify"


class AlteredBody(EnvelopeError):
    code = "envelope-altered-body"
    title = "The envelope's body does not match the digest that was signed"


class WrongAudience(EnvelopeError):
    code = "envelope-wrong-audience"
    title = "The envelope is addressed to someone else"
    status = 403


class Expired(EnvelopeError):
    code = "envelope-expired"
    title = "The envelope has expired"


class NotYetValid(EnvelopeError):
    code = "envelope-not-yet-valid"
    title = "The envelope is not valid yet"


class Replayed(EnvelopeError):
    code = "envelope-replayed"
    title = "The envelope's nonce has been seen before"
    status = 409


class WrongMessageType(EnvelopeError):
    code = "envelope-wrong-type"
    title = "The envelope carries a different kind of message than this endpoint accepts"
    status = 422
