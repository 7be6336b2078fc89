"""The OPA server engine: the same bundle loaded into an Open Policy Agent server.

On start the engine pushes every Rego module through OPA's Policy API
(``PUT /v1/policies/{id}``) and every top-level data document through the Data API
(``PUT /v1/data/{path}``), removes modules an earlier bundle left behind, and then asks
``POST /v1/data/{path}`` for each decision. Errors of the HTTP client are translated here,
and only here, into ``EngineError``: ``EngineUnavailable`` when the server cannot be
reached or does not answer as OPA does, so a caller can tell that from a refused bundle.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import (
    ConnectionsError,
    DeleteDataError,
    DeletePolicyError,
    PolicyNotFoundError,
    QueryExecuteError,
    RegoParseError,
)

from policies.bundle import Bundle
from policies.errors import EngineError, EngineUnavailable

__all__ = ["POLICY_ID_PREFIX", "OpaServerEngine"]

POLICY_ID_PREFIX = "junction-"
_FAILURES = (
    ConnectionsError,
    DeleteDataError,
    DeletePolicyError,
    PolicyNotFoundError,
    QueryExecuteError,
    RegoParseError,
    requests.RequestException,
    ValueError,
    TypeError,
)


def _failure(url: str, exc: Exception, doing: str) -> EngineError:
    """``exc``, raised while ``doing`` (e.g. "did not take the bundle"), in one line.

    The HTTP client's own messages run to several nested reprs; the cause is enough.
    """
    if isinstance(exc, TypeError) or (isinstance(exc, RegoParseError) and exc.message):
        return EngineError(f"the OPA server at {url} {doing}: {exc}")
    if isinstance(exc, requests.Timeout):
        why = "did not answer in time"
    elif isinstance(exc, requests.ConnectionError | ConnectionsError):
        why = "cannot be reached (is it running?)"
    elif isinstance(exc, requests.HTTPError) and exc.response is not None:
        why = f"answered HTTP {exc.response.status_code}"
    else:
        why = "answered with something that is not OPA's API"
    return EngineUnavailable(f"the OPA server at {url} {why}, so it {doing}")


def policy_id(module_path: str) -> str:
    return POLICY_ID_PREFIX + module_path.replace("/", "-").removesuffix(".rego")


class OpaServerEngine:
    """Evaluates a bundle on an OPA server reached over HTTP."""

    def __init__(self, bundle: Bundle, url: str, *, timeout: float = 5.0) -> None:
        """Connect, push the bundle's modules and data, and drop stale modules.

        Raises:
            EngineUnavailable: the server cannot be reached or does not answer as OPA.
            EngineError: the server refuses a module.
        """
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise EngineError(f"the OPA url {url!r} must look like http://host:8181")
        self._digest = bundle.digest
        self._url = url
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout,
            retries=0,
        )
        wanted = {policy_id(path): source for path, source in bundle.modules.items()}
        self._modules = frozenset(wanted)
        try:
            for key, document in bundle.data.items():
                self._client.update_or_create_data(document, key)
            stale = [
                p
                for p in self._client.get_policies_list()
                if p.startswith(POLICY_ID_PREFIX) and p not in wanted
            ]
            for name in stale:
                self._client.delete_policy(name)
            for name, source in wanted.items():
                self._client.update_policy_from_string(source, name, rego_compat=False)
        except _FAILURES as exc:
            self._client.close_connection()
            raise _failure(url, exc, "did not take the bundle") from None

    @property
    def name(self) -> str:
        return "opa"

    @property
    def digest(self) -> str:
        return self._digest

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """The rule's value from OPA's Data API, or None when undefined.

        Raises:
            EngineUnavailable: the server cannot be reached or does not answer as OPA.
            EngineError: the server answers with an error.
        """
        try:
            answer = self._client.query_rule(input_document, entrypoint)
        except _FAILURES as exc:
            raise _failure(self._url, exc, f"could not evaluate {entrypoint}") from None
        if not isinstance(answer, dict):
            raise EngineError(f"the OPA server answered {entrypoint} with something not JSON")
        return answer.get("result")

    def probe(self) -> None:
        """Return if the server answers and still holds every module of the bundle.

        A server restarted since the bundle was pushed holds none of it, and would
        answer every decision as undefined until the policy is reloaded.

        Raises:
            EngineUnavailable: the server cannot be reached, or has lost modules.
        """
        try:
            held = set(self._client.get_policies_list())
        except _FAILURES as exc:
            raise _failure(self._url, exc, "cannot decide") from None
        missing = self._modules - held
        if missing:
            raise EngineUnavailable(
                f"the OPA server at {self._url} no longer holds {len(missing)} of the"
                f" bundle's {len(self._modules)} modules (was it restarted?); reload the"
                " policy to push them again"
            )

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close_connection()
