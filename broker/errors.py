"""The broker's error hierarchy. ``connectors.protocol.problems`` renders it over HTTP."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadToken",
    "BrokerError",
    "CheckpointRejected",
    "ConfigurationError",
    "Conflict",
    "ConnectorUnreachable",
    "Forbidden",
    "InvalidChange",
    "InvalidRequest",
    "IssuerUnavailable",
    "ManifestRejected",
    "NotFound",
    "NotReady",
    "PreconditionFailed",
    "StoreUnavailable",
    "TokenExpired",
    "Unauthenticated",
    "UnknownIssuer",
]


class BrokerError(Exception):
    """Base of every error the broker reports to a caller."""

    code: ClassVar[str] = "broker-error"
    title: ClassVar[str] = "The broker could not complete the request"
    status: ClassVar[int] = 400

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class ConfigurationError(BrokerError):
    code = "configuration-error"
    title = "The broker's configuration is not valid"
    status = 500


class Unauthenticated(BrokerError):
    code = "unauthenticated"
    title = "Sign-in is required"
    status = 401
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class BadToken(Unauthenticated):
    code = "bad-token"
    title = "The bearer token is not valid"


class TokenExpired(Unauthenticated):
    code = "token-expired"
    title = "The bearer token has expired"


class UnknownIssuer(Unauthenticated):
    code = "unknown-issuer"
    title = "The bearer token comes from an issuer this broker does not trust"


class IssuerUnavailable(BrokerError):
    code = "issuer-unavailable"
    title = "The identity provider's keys could not be fetched"
    status = 503


class Forbidden(BrokerError):
    code = "forbidden"
    title = "Your role may not do this"
    status = 403


class NotFound(BrokerError):
    code = "not-found"
    title = "Nothing was found"
    status = 404


class Conflict(BrokerError):
    code = "conflict"
    title = "The change conflicts with what is stored"
    status = 409


class PreconditionFailed(BrokerError):
    """A change sent with ``If-Match`` naming a version that is no longer the newest."""

    code = "precondition-failed"
    title = "It has changed since you read it"
    status = 412


class InvalidChange(BrokerError):
    code = "invalid-change"
    title = "The change is not allowed"
    status = 422


class InvalidRequest(BrokerError):
    """A read whose values cannot be answered (a backwards range, a malformed identifier)."""

    code = "invalid-request"
    title = "The request is not valid"
    status = 422


class ConnectorUnreachable(BrokerError):
    code = "connector-unreachable"
    title = "The connector could not be reached"
    status = 502


class ManifestRejected(BrokerError):
    code = "manifest-rejected"
    title = "The connector's manifest was rejected"
    status = 422


class StoreUnavailable(BrokerError):
    code = "store-unavailable"
    title = "The broker's database is unavailable"
    status = 503


class CheckpointRejected(BrokerError):
    code = "checkpoint-rejected"
    title = "The checkpoint is not one this log signed"
    status = 422


class NotReady(BrokerError):
    code = "not-ready"
    title = "The broker is not ready to serve requests"
    status = 503
