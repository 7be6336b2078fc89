"""The agency connector's one error hierarchy: mappings, sources, matching and the service.

Each carries what a problem+json body needs (``code``, ``title``, ``status``) and a
``detail`` that names what was wrong, so a one-line message tells the operator what to fix.
Envelope rejections keep their own classes in ``connectors.protocol.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "CheckpointInvalid",
    "CheckpointRejected",
    "ConfigError",
    "ConnectorError",
    "LocalAuditUnavailable",
    "LocalPolicyError",
    "MappingError",
    "NotReady",
    "SourceError",
    "SourceTimeout",
    "SourceUnavailable",
    "UnknownField",
    "UnknownReference",
]


class ConnectorError(Exception):
    """Base of every connector error."""

    code: ClassVar[str] = "connector-error"
    title: ClassVar[str] = "The agency connector could not answer"
    status: ClassVar[int] = 500

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class MappingError(ConnectorError):
    """The mapping file is invalid, or does not fit the live source it describes.

    ``problems`` holds every problem found, the first of them also as ``detail``; the
    detail of an error built by ``listing`` counts the others, so it stays one line.
    """

    code = "mapping-invalid"
    title = "The agency mapping does not fit its source"
    status = 500

    def __init__(self, detail: str, *, problems: Sequence[str] = (), **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.problems = list(problems) or [detail]

    @classmethod
    def listing(cls, problems: Sequence[str]) -> MappingError:
        """One error for ``problems`` (at least one)."""
        more = len(problems) - 1
        detail = problems[0]
        if more:
            detail += (
                f" (and {more} more problem{'s' if more > 1 else ''}:"
                " junction connector check lists them)"
            )
        return cls(detail, problems=problems)


class ConfigError(ConnectorError):
    """The connector's configuration file (or a key or policy file it names) is not usable."""

    code = "connector-config-invalid"
    title = "The connector's configuration is not valid"
    status = 500


class NotReady(ConnectorError):
    """The readiness probe found the agency's system unusable (damaged, or not as mapped)."""

    code = "not-ready"
    title = "The connector is not ready to answer"
    status = 503


class SourceError(ConnectorError):
    """The agency's source could not be read while answering a request."""

    code = "source-unavailable"
    title = "The agency's source could not be read"
    status = 503


class SourceUnavailable(SourceError):
    """The source failed in a way the driver reported (connection refused, lost, ...)."""

    code = "source-unavailable"
    title = "The agency's source could not be read"


class SourceTimeout(SourceError):
    """A source query ran past the per-request time limit."""

    code = "source-timeout"
    title = "The agency's source did not answer in time"
    status = 504


class UnknownField(ConnectorError):
    """A request named a canonical field the mapping does not offer."""

    code = "unknown-field"
    title = "The field is not offered by this agency"
    status = 400


class UnknownReference(ConnectorError):
    """A local reference was not issued by this connector (or was altered)."""

    code = "unknown-reference"
    title = "The local reference is not one this agency issued"
    status = 400


class LocalPolicyError(ConnectorError):
    """The local policy could not be evaluated; nothing is released without it."""

    code = "local-policy-error"
    title = "The agency's local policy could not be evaluated"
    status = 503


class LocalAuditUnavailable(ConnectorError):
    """The local audit log could not record an exchange, so the exchange is not served."""

    code = "local-audit-unavailable"
    title = "The agency's audit log cannot record this exchange"
    status = 503


class CheckpointInvalid(ConnectorError):
    """A broker checkpoint is malformed or not signed by the pinned broker log key."""

    code = "broker-checkpoint-invalid"
    title = "The broker's audit checkpoint does not verify"
    status = 400


class CheckpointRejected(ConnectorError):
    """A broker checkpoint contradicts one seen before: the broker's log has forked."""

    code = "broker-checkpoint-inconsistent"
    title = "The broker's audit log is inconsistent with a checkpoint seen before"
    status = 409
