"""Measure matching against a synthetic town's ground truth, per agency.

Subjects are the town's true people as a caseworker would know them (true names, date of
birth, current postcode; identifiers for every other person). Every person the agency
holds is asked for, and as many it does not hold. The top candidate counts: precision is
the share of returned top candidates that are the right record, recall the share of
held people whose right record came back, and household recall the share of the true
household members the agency holds that came back as the matched person's household.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from connectors.matching.matcher import Matcher
from connectors.matching.references import LocalReferences
from connectors.protocol.messages import Subject

__all__ = ["Evaluation", "evaluate", "subject_of"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    agency: str
    subjects_held: int
    subjects_not_held: int
    returned: int
    correct: int
    household_expected: int
    household_found: int

    @property
    def precision(self) -> float:
        return self.correct / self.returned if self.returned else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.subjects_held if self.subjects_held else 1.0

    @property
    def household_recall(self) -> float:
        if not self.household_expected:
            return 1.0
        return self.household_found / self.household_expected


def subject_of(person: dict[str, Any], *, with_identifiers: bool) -> Subject:
    """What a caseworker knows of a true person from ``truth.json``."""
    identifiers = {}
    if with_identifiers:
        identifiers = {n: person[n] for n in ("nhs_number", "ni_number", "upn") if person.get(n)}
    return Subject(
        given_name=person["given_name"],
        family_name=person["family_name"],
        date_of_birth=dt.date.fromisoformat(person["date_of_birth"]),
        sex=person["sex"],
        postcode=person["postcode"],
        identifiers=identifiers,
    )


def evaluate(
    agency: str,
    truth: dict[str, Any],
    matcher: Matcher,
    references: LocalReferences,
    *,
    seed: int = 3,
) -> Evaluation:
    """Match every held person and as many others against one agency.

    ``agency`` is the key of ``truth["agencies"]`` (the database's name).
    """
    held_keys: dict[str, str] = truth["agencies"][agency]
    key_of = {person_id: key for key, person_id in held_keys.items()}
    people: list[dict[str, Any]] = truth["people"]
    households: dict[int, list[str]] = {}
    for person in people:
        households.setdefault(person["household_id"], []).append(person["person_id"])
    held = [p for p in people if p["person_id"] in key_of]
    others = [p for p in people if p["person_id"] not in key_of]
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    not_held = rng.sample(others, min(len(others), len(held)))
    returned = correct = expected_total = found_total = 0
    for index, person in enumerate(held + not_held):
        subject = subject_of(person, with_identifiers=index % 2 == 0)
        candidates = matcher.match(subject, max_candidates=3, include_household=True)
        if not candidates:
            continue
        returned += 1
        top = candidates[0]
        if references.key(top.ref) != key_of.get(person["person_id"]):
            continue
        correct += 1
        expected = {
            key_of[other]
            for other in households[person["household_id"]]
            if other != person["person_id"] and other in key_of
        }
        found = {references.key(member.ref) for member in top.household}
        expected_total += len(expected)
        found_total += len(expected & found)
    return Evaluation(
        agency=agency,
        subjects_held=len(held),
        subjects_not_held=len(not_held),
        returned=returned,
        correct=correct,
        household_expected=expected_total,
        household_found=found_total,
    )
