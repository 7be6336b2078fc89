"""Property-based fuzzing of the broker's and a connector's OpenAPI (schemathesis).

Every operation gets generated requests, valid (positive) and invalid (negative), with a
bearer token of a role it admits so the fuzzing reaches the handlers. Checks: no 5xx, and
every answer has a documented status, media type and body shape. The seed is fixed and
the number of examples bounded, so a run is repeatable and takes a minute or two.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode, checks

from broker.identity.principal import Role
from tests.hostile.hostile_kit import HostileRegion, roles_of

pytestmark = pytest.mark.slow

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = 25
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    # No shrinking: the first failing request is reported as it was sent.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
# Whose token each role's calls carry.
AGENCY_OF = {Role.ADMIN: "broker", Role.CONNECTOR: "education"}


def _campaign(
    strategy: SearchStrategy[schemathesis.Case], headers: dict[str, str]
) -> Callable[[], None]:
    @FUZZ
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def _fuzz(
    schema: schemathesis.BaseSchema, headers_for: Callable[[str], dict[str, str]]
) -> list[str]:
    """Run every operation in both modes; return one line per operation that failed."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        description = str(operation.definition.raw.get("description", ""))
        headers = headers_for(description)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _campaign(operation.as_strategy(mode), headers)()
            except Unsatisfiable:
                # An operation without parameters or body has no invalid request to send.
                if mode is not GenerationMode.NEGATIVE:
                    raise
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                first = str(exc).strip().splitlines()
                failures.append(f"{operation.label} [{mode.value}]: {' '.join(first[:6])}")
    return failures


def test_broker_api_survives_fuzzing(hostile_region: HostileRegion) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", hostile_region.app)

    def headers_for(description: str) -> dict[str, str]:
        roles = roles_of(description)
        if not roles:
            return {}
        return hostile_region.headers(roles[0], agency=AGENCY_OF.get(roles[0], "council"))

    failures = _fuzz(schema, headers_for)
    assert failures == [], "\n".join(failures)


def test_connector_api_survives_fuzzing(hostile_region: HostileRegion) -> None:
    app = hostile_region.connectors["police"].app
    failures = _fuzz(schemathesis.openapi.from_asgi("/openapi.json", app), lambda _: {})
    assert failures == [], "\n".join(failures)
