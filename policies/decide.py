"""One family-query decision from any engine, with deny on every kind of failure.

Whatever goes wrong while deciding (an engine error, a server that cannot be reached, an
answer of the wrong shape, a missing (agency, person) pair) becomes a decision that
refuses everything with the reason "policy error". No exception escapes to the caller
and nothing is ever allowed by accident.

The policy answers in a normalised shape (see policies/rego/family.rego): per agency, the
exchanges it decided (templates, one per consent outcome and set of restricted fields
that occurs) and, per person, which template is theirs. Here that answer is checked
against a strict model and expanded into one ``ExchangeDecision`` per (agency, person):
each is a copy of what the policy decided, named for the pair. Every engine goes through
the same expansion, so they cannot differ in it.
"""

from __future__ import annotations

from typing import Final

import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from policies.engine import JsonEvaluating, PolicyEngine
from policies.errors import PolicyError
from policies.model import (
    AgreementRef,
    ExchangeDecision,
    FamilyDecision,
    FamilyQueryInput,
    Obligation,
    Reason,
    SubmitDecision,
    Tier,
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


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Exchange(_Strict):
    """An exchange as the policy decided it: an ``ExchangeDecision`` without its pair."""

    allow: bool
    tier: Tier
    permitted_fields: list[str]
    withheld: list[WithheldField]
    obligations: list[Obligation]
    reasons: list[Reason]
    agreement: AgreementRef | None
    retention_days: int


class _Template(_Strict):
    """The exchange decided for everybody at an agency whose consent has this outcome and
    who has restricted exactly these of the fields it would otherwise release."""

    outcome: str
    restricted: list[str]
    exchange: _Exchange


class _Agency(_Strict):
    """One agency's part of the answer: its templates, and for each person asked about,
    in order, [ref, consent outcome, restricted fields], which names their template."""

    agency_id: str
    templates: list[_Template]
    persons: list[tuple[str, str, list[str]]]


class _Answer(_Strict):
    """The policy's answer (the shape is described at the top of family.rego)."""

    submit: SubmitDecision
    agencies: list[_Agency]


class _MalformedAnswer(Exception):
    """The answer names a template it does not hold, or holds one twice."""


_EXCHANGE_FIELDS: Final = frozenset(ExchangeDecision.model_fields)


def _named(exchange: _Exchange, agency_id: str, person_ref: str) -> ExchangeDecision:
    """The decided exchange as the decision for one (agency, person) pair.

    Built the way ``ExchangeDecision.model_construct`` builds a model, without validating
    again (every value was validated as part of the answer, with the same type) and
    without its loop over the fields, which costs more than the rest of the expansion.
    People who share a template share its (frozen) reasons and lists.
    """
    decision = ExchangeDecision.__new__(ExchangeDecision)
    values = {"agency_id": agency_id, "person_ref": person_ref, **exchange.__dict__}
    object.__setattr__(decision, "__dict__", values)
    object.__setattr__(decision, "__pydantic_fields_set__", set(_EXCHANGE_FIELDS))
    object.__setattr__(decision, "__pydantic_extra__", None)
    object.__setattr__(decision, "__pydantic_private__", None)
    return decision


def _expand(answer: _Answer) -> list[ExchangeDecision]:
    """One decision per (agency, person) the answer names, in the order it names them.

    Raises:
        _MalformedAnswer: a person's template is missing, or a template is given twice.
    """
    exchanges: list[ExchangeDecision] = []
    for agency in answer.agencies:
        decided = {(t.outcome, tuple(t.restricted)): t.exchange for t in agency.templates}
        if len(decided) != len(agency.templates):
            raise _MalformedAnswer(f"{agency.agency_id}: a template is given twice")
        for ref, outcome, restricted in agency.persons:
            exchange = decided.get((outcome, tuple(restricted)))
            if exchange is None:
                raise _MalformedAnswer(f"{agency.agency_id}: no template for {ref!r}")
            exchanges.append(_named(exchange, agency.agency_id, ref))
    return exchanges


def _evaluate(engine: PolicyEngine, query: FamilyQueryInput) -> _Answer | None:
    """The policy's answer, checked against its model; None when the rule is undefined.

    An engine that takes JSON text for the family decision gets the query serialised
    straight from its model, and its answer is parsed straight into the model.

    Raises:
        PolicyError: the engine failed.
        ValidationError: the answer has the wrong shape.
    """
    if isinstance(engine, JsonEvaluating) and FAMILY_ENTRYPOINT in engine.compiled:
        text = engine.evaluate_json(FAMILY_ENTRYPOINT, query.model_dump_json())
        return None if text is None else _Answer.model_validate_json(text)
    raw = engine.evaluate(FAMILY_ENTRYPOINT, query.to_document())
    return _Answer.model_validate(raw) if isinstance(raw, dict) else None


def decide_family(engine: PolicyEngine, query: FamilyQueryInput) -> FamilyDecision:
    """Decide the submit check and every (agency, person) pair in one evaluation.

    Never raises: a failure of any kind is a refusal with the reason "policy error".
    """
    digest, name = engine.digest, engine.name
    try:
        answer = _evaluate(engine, query)
        if answer is None:
            _log.error("policy decision is undefined for this input", engine=name, digest=digest)
            return policy_error_decision(query, digest, name)
        decision = FamilyDecision(
            submit=answer.submit, exchanges=_expand(answer), bundle_digest=digest, engine=name
        )
    except (PolicyError, ValidationError, _MalformedAnswer) as exc:
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
