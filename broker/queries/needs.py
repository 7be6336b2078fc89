"""The Supporting Families headline criteria, judged from released facts only.

Each of the ten criteria of the Supporting Families outcomes framework (2022) is met,
not met, or unknown: unknown when no fact that bears on it was released (because no
agency holds it, or policy withheld it), or when none that was released meets it but an
agency that offers another of its facts did not answer. A withheld fact never counts
either way.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from broker.queries.schemas import FactView, NeedView

__all__ = ["CRITERIA", "assess_needs"]

FactValue = str | int | float | bool | None
Test = Callable[[FactValue], bool]


def _at_least(threshold: float) -> Test:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= threshold


def _below(threshold: float) -> Test:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v < threshold


_yes: Test = operator.truth


@dataclass(frozen=True, slots=True)
class Criterion:
    code: str
    title: str
    indicators: tuple[tuple[str, Test, str], ...]


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "education",
        "Getting a good education",
        (
            ("education.attendance_rate", _below(0.9), "attendance below 90%"),
            ("education.permanently_excluded", _yes, "permanently excluded"),
            ("education.suspensions_12m", _at_least(3), "3+ suspensions in 12 months"),
        ),
    ),
    Criterion(
        "early_years",
        "Good early years development",
        (("education.sen_status", lambda v: v not in (None, "", "none", "N"), "SEN support"),),
    ),
    Criterion(
        "health",
        "Improved mental and physical health",
        (
            ("health.mental_health_contacts_12m", _at_least(1), "mental health contact"),
            ("health.ae_attendances_12m", _at_least(3), "3+ A&E attendances in 12 months"),
        ),
    ),
    Criterion(
        "substance_use",
        "Promoting recovery and reducing harm from substance use",
        (("health.substance_misuse_service_24m", _yes, "substance misuse service"),),
    ),
    Criterion(
        "family_relationships",
        "Improved family relationships",
        (("social_care.early_help", _yes, "open early help episode"),),
    ),
    Criterion(
        "children_safe",
        "Children safe from abuse and exploitation",
        (
            ("social_care.child_protection_plan", _yes, "child protection plan"),
            ("social_care.child_in_need", _yes, "child in need"),
            ("social_care.looked_after", _yes, "looked after"),
            ("police.missing_episodes_12m", _at_least(1), "missing episode"),
        ),
    ),
    Criterion(
        "crime",
        "Crime prevention and tackling crime",
        (
            ("police.suspect_12m", _at_least(1), "suspect in an offence"),
            ("police.callouts_12m", _at_least(3), "3+ police call-outs"),
        ),
    ),
    Criterion(
        "domestic_abuse",
        "Safe from domestic abuse",
        (("police.domestic_abuse_incidents_12m", _at_least(1), "domestic abuse incident"),),
    ),
    Criterion(
        "housing",
        "Secure housing",
        (
            ("housing.rent_arrears_gbp", _at_least(500), "rent arrears of £500+"),
            ("housing.notice_seeking_possession", _yes, "notice seeking possession"),
        ),
    ),
    Criterion(
        "financial_stability",
        "Financial stability",
        (
            ("benefits.out_of_work_benefit", _yes, "out-of-work benefit"),
            ("benefits.sanctions_12m", _at_least(1), "benefit sanction"),
        ),
    ),
)


def assess_needs(
    facts: Iterable[tuple[str, FactView]], unanswered: Collection[str] = frozenset()
) -> list[NeedView]:
    """Judge every criterion from ``(member_id, fact)`` pairs of released facts;
    ``unanswered`` names the fields offered by agencies that did not answer."""
    by_field: dict[str, list[tuple[str, FactView]]] = {}
    for member_id, fact in facts:
        by_field.setdefault(fact.field, []).append((member_id, fact))
    needs = []
    for criterion in CRITERIA:
        evidence: list[str] = []
        seen = False
        for field, test, label in criterion.indicators:
            for member_id, fact in by_field.get(field, ()):
                seen = True
                if test(fact.value):
                    evidence.append(f"{member_id}: {label} ({fact.source_agency})")
        missing = any(field in unanswered for field, _, _ in criterion.indicators)
        status: Literal["met", "not_met", "unknown"] = (
            "met" if evidence else "not_met" if seen and not missing else "unknown"
        )
        needs.append(
            NeedView(code=criterion.code, title=criterion.title, status=status, evidence=evidence)
        )
    return needs
