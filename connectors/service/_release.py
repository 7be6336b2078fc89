"""What a fetch releases: exactly the fields asked, allowed and held, nothing more.

Pure functions over the request, the local policy's verdict and what the source
returned, so the rule "never more than asked" lives in one small place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

from connectors.protocol.messages import (
    FactValue,
    FetchPerson,
    PersonFacts,
    ReleasedFact,
    WithheldField,
)
from connectors.service.ports import PolicyVerdict

__all__ = ["person_facts", "readable_fields", "summary"]


def readable_fields(
    persons: Sequence[FetchPerson],
    known: Collection[str],
    verdict: PolicyVerdict,
    offered: Collection[str],
) -> dict[str, list[str]]:
    """Per known, unrefused person, the asked fields the agency offers and policy allows."""
    return {
        p.ref: [f for f in p.fields if f in offered and f not in verdict.fields.get(p.ref, {})]
        for p in persons
        if p.ref in known and p.ref not in verdict.persons
    }


def person_facts(
    person: FetchPerson,
    known: Collection[str],
    verdict: PolicyVerdict,
    record: Mapping[str, tuple[FactValue, dt.datetime]] | None,
    offered: Collection[str],
) -> PersonFacts:
    """The answer for one person: each asked field either released or withheld with why."""
    refusal = verdict.persons.get(person.ref)
    if refusal is not None:
        return PersonFacts(ref=person.ref, refusal=refusal)
    if person.ref not in known:
        return PersonFacts(
            ref=person.ref,
            withheld=[
                WithheldField(
                    field=f, code="unknown-person", reason="this agency holds no such record"
                )
                for f in person.fields
            ],
        )
    by_policy = verdict.fields.get(person.ref, {})
    facts: list[ReleasedFact] = []
    withheld: list[WithheldField] = []
    for name in person.fields:
        if name not in offered:
            withheld.append(
                WithheldField(
                    field=name, code="not-offered", reason="this agency does not offer it"
                )
            )
        elif name in by_policy:
            rule = by_policy[name]
            withheld.append(WithheldField(field=name, code=rule.code, reason=rule.reason))
        elif record is None or record.get(name, (None,))[0] is None:
            # No value (an empty column, a min, max or latest over no rows) is "not held",
            # never a released null: a null would read as an answer, and be audited as one.
            withheld.append(
                WithheldField(
                    field=name, code="not-held", reason="the agency holds no value for it"
                )
            )
        else:
            value, as_of = record[name]
            facts.append(ReleasedFact(field=name, value=value, as_of=as_of))
    return PersonFacts(ref=person.ref, facts=facts, withheld=withheld)


def summary(answered: Sequence[PersonFacts]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The fields released and the reasons anything was withheld, for the audit entry."""
    released = tuple(sorted({fact.field for person in answered for fact in person.facts}))
    reasons = tuple(
        sorted(
            {f"field:{w.code}" for person in answered for w in person.withheld}
            | {f"person:{p.refusal.code}" for p in answered if p.refusal is not None}
        )
    )
    return released, reasons
