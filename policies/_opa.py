"""The OPA server engine: the same bundle loaded into an Open Policy Agent server.

On start the engine pushes every Rego module through OPA's Policy API
(``PUT /v1/policies/{id}``) and every top-level data document through the Data API
(``PUT /v1/data/{path}``), removes modules an earlier bundle left behind, and then asks
``POST /v1/data/{path}`` for each decision. Errors of the HTTP client are translated here,
and only here, into ``EngineError``.
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
from policies.errors import EngineError

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


def policy_id(module_path: str) -> str:
    return POLICY_ID_PREFIX + module_path.replace("/", "-").removesuffix(".rego")


class OpaServerEngine:
    """Evaluates a bundle on an OPA server reached over HTTP."""

    def __init__(self, bundle: Bundle, url: str, *, timeout: float = 5.0) -> None:
        """Connect, push the bundle's modules and data, and drop stale modules.

        Raises:
            EngineError: the server cannot be reached or refuses a module or document.
        """
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise EngineError(f"the OPA url {url!r} must look like http://host:8181")
        self._digest = bundle.digest
        self._client = OpaClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 80),
            ssl=parts.scheme == "https",
            timeout=timeout,
            retries=0,
        )
        wanted = {policy_id(path): source for path, source in bundle.modules.items()}
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
            raise EngineError(f"the OPA server at {url} did not take the bundle: {exc}") from None

    @property
    def name(self) -> str:
        return "opa"

    @property
    def digest(self) -> str:
        return self._digest

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        """The rule's value from OPA's Data API, or None when undefined.

        Raises:
            EngineError: the server cannot be reached or answers with an error.
        """
        try:
            answer = self._client.query_rule(input_document, entrypoint)
        except _FAILURES as exc:
            raise EngineError(f"the OPA server failed to evaluate {entrypoint}: {exc}") from None
        if not isinstance(answer, dict):
            raise EngineError(f"the OPA server answered {entrypoint} with something not JSON")
        return answer.get("result")

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close_connection()
