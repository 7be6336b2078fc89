"""The broker's error hierarchy. ``connectors.protocol.problems`` renders it over HTTP."""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["BrokerError", "ConfigurationError", "Forbidden", "NotFound", "Unauthenticated"]


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


class Forbidden(BrokerError):
    code = "forbidden"
    title = "Your role may not do this"
    status = 403


class NotFound(BrokerError):
    code = "not-found"
    title = "Nothing was found"
    status = 404
