"""One family-query decision from any engine, with deny on every kind of failure.

Whatever goes wrong while deciding (an engine error, a server that cannot be reached, an
answer of the wrong shape, a missing (agency, person) pair) becomes a decision that
refuses everything with the reason "policy error". No exception escapes to the caller
and nothing is ever allowed by accident.
"""

from __future__ import annotations

from typing import Final

import structlog
from pydantic import ValidationError

from policies.engine import PolicyEngine
from policies.errors import PolicyError
from policies.model import (
    ExchangeDecision,
    FamilyDecision,
    FamilyQueryInput,
    Reason,
    SubmitDecision,
    WithheldField,
)

__all__ = ["FAMILY_ENTRYPOINT", "POLICY_ERROR", "decide_family", "policy_error_decision"]

FAMILY_ENTRYPOINT: Final = "junction.family.decision"
POLICY_ERROR: Final = Reason(
    code="policy_error",
    text="policy error: the policy could not be evaluated, so nothing is shared.",
)
_log = structlog.get_logger("junction.policies")


def policy_error_decision(query: FamilyQueryInput, digest: str, engine: str) -> FamilyDecision:
    """The decision that refuses the query and every exchange because policy failed."""
    exchanges = [
        ExchangeDecision(
            agency_id=provider.agency_id,
            person_ref=person.ref,
            allow=False,
            tier="none",
            permitted_fields=[],
            withheld=[
                WithheldField(field=name, code=POLICY_ERROR.code, text=POLICY_ERROR.text)
                for name in sorted(set(provider.requested_fields))
            ],
            obligations=[],
            reasons=[POLICY_ERROR],
            agreement=None,
            retention_days=0,
        )
        for provider in query.providers
        for person in provider.persons
    ]
    return FamilyDecision(
        submit=SubmitDecision(allow=False, reasons=[POLICY_ERROR], obligations=[]),
        exchanges=exchanges,
        bundle_digest=digest,
        engine=engine,
    )


def decide_family(engine: PolicyEngine, query: FamilyQueryInput) -> FamilyDecision:
    """Decide the submit check and every (agency, person) pair in one evaluation.

    Never raises: a failure of any kind is a refusal with the reason "policy error".
    """
    digest, name = engine.digest, engine.name
    try:
        raw = engine.evaluate(FAMILY_ENTRYPOINT, query.to_document())
        if not isinstance(raw, dict):
            _log.error("policy decision is undefined for this input", engine=name, digest=digest)
            return policy_error_decision(query, digest, name)
        decision = FamilyDecision.model_validate({**raw, "bundle_digest": digest, "engine": name})
    except (PolicyError, ValidationError) as exc:
        _log.error("policy evaluation failed", engine=name, digest=digest, error=str(exc))
        return policy_error_decision(query, digest, name)
    except Exception as exc:  # noqa: BLE001 - an engine bug must still end in a deny
        _log.error("policy engine raised", engine=name, digest=digest, error=repr(exc))
        return policy_error_decision(query, digest, name)
    asked = [(p.agency_id, person.ref) for p in query.providers for person in p.persons]
    answered = [(e.agency_id, e.person_ref) for e in decision.exchanges]
    if answered != asked:
        _log.error("policy answered other pairs than asked", engine=name, digest=digest)
        return policy_error_decision(query, digest, name)
    return decision
