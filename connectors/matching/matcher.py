"""Local matching: from a subject to the agency's candidate records, never to facts.

Identifiers first: a record whose identifier (NHS number, UPN, NI number, ...) equals the
subject's and whose date of birth agrees (allowing a day/month swap) is the subject.
Otherwise each blocked record is scored by the Fellegi-Sunter model; candidates above the
model's threshold are returned, best first, with which fields agreed at which level,
linkage tokens for the person, and their household members as tokens. With a consent key,
each record also carries the consent references of the identifiers it holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.matching.compare import compare, compare_dob
from connectors.matching.model import MatchModel
from connectors.matching.references import LocalReferences
from connectors.matching.tokens import LinkageKey, linkage_tokens
from connectors.protocol.consent_refs import ConsentKey
from connectors.protocol.messages import HouseholdMember, LinkageTokens, MatchCandidate, Subject
from connectors.sources import Source, SourceRecord

__all__ = ["IDENTIFIER_RULE", "Matcher", "ScoredRecord"]

IDENTIFIER_RULE = "identifier_and_date_of_birth"
_BLOCK_LIMIT = 200


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    record: SourceRecord
    match_weight: float
    probability: float
    agreements: dict[str, str]
    by_identifier: bool


def _identifier_level(subject: Subject, record: SourceRecord) -> str | None:
    shared = [name for name in record.identifiers if subject.identifiers.get(name) is not None]
    if not shared:
        return None
    for name in shared:
        if subject.identifiers[name].replace(" ", "").upper() == record.identifiers[name].upper():
            return "exact"
    return "different"


class Matcher:
    """Matches subjects against one agency's source."""

    def __init__(
        self,
        source: Source,
        *,
        model: MatchModel,
        linkage_key: LinkageKey,
        references: LocalReferences,
        consent_key: ConsentKey | None = None,
        block_limit: int = _BLOCK_LIMIT,
    ) -> None:
        self._source = source
        self._consent_key = consent_key
        self._model = model
        self._linkage_key = linkage_key
        self._references = references
        self._block_limit = block_limit

    def score(self, subject: Subject, record: SourceRecord) -> ScoredRecord:
        """How well one record agrees with the subject, and why."""
        levels = compare(
            given_name=subject.given_name,
            family_name=subject.family_name,
            date_of_birth=subject.date_of_birth,
            postcode=subject.postcode,
            sex=subject.sex,
            record=record,
        )
        identifier = _identifier_level(subject, record)
        if identifier is not None:
            levels["identifier"] = identifier
        result = self._model.score(levels)
        by_identifier = identifier == "exact" and compare_dob(
            subject.date_of_birth, record.date_of_birth
        ) in ("exact", "day_month_swap")
        agreements = {name: level for name, level in levels.items() if level != "null"}
        probability = result.probability
        if by_identifier:
            agreements["rule"] = IDENTIFIER_RULE
            probability = 1.0
        return ScoredRecord(record, result.match_weight, probability, agreements, by_identifier)

    def candidates(self, subject: Subject, max_candidates: int) -> list[ScoredRecord]:
        """Scored records above the threshold, identifier matches first, best first.

        Raises:
            SourceError: the source could not be read.
        """
        scored = [self.score(subject, r) for r in self._source.block(subject, self._block_limit)]
        if any(s.by_identifier for s in scored):
            scored = [s for s in scored if s.by_identifier]
        kept = [s for s in scored if s.by_identifier or s.probability >= self._model.threshold]
        kept.sort(key=lambda s: (s.by_identifier, s.match_weight), reverse=True)
        return kept[:max_candidates]

    def tokens(self, record: SourceRecord) -> LinkageTokens:
        """The linkage tokens of one record."""
        return linkage_tokens(
            self._linkage_key,
            given_name=record.given_name,
            family_name=record.family_name,
            date_of_birth=record.date_of_birth,
            postcode=record.postcode,
            sex=record.sex,
            identifiers=record.identifiers,
        )

    def consent_refs(self, record: SourceRecord) -> list[str]:
        """The consent references of one record's identifiers; none without a key."""
        if self._consent_key is None:
            return []
        return self._consent_key.refs(record.identifiers)

    def match(
        self, subject: Subject, *, max_candidates: int = 5, include_household: bool = True
    ) -> list[MatchCandidate]:
        """Candidate records of ``subject`` as the wire carries them (no facts).

        Raises:
            SourceError: the source could not be read.
        """
        answer = []
        for scored in self.candidates(subject, max_candidates):
            household: list[HouseholdMember] = []
            if include_household:
                household = [
                    HouseholdMember(
                        ref=self._references.ref(member.key),
                        relationship=relationship[:200],
                        tokens=self.tokens(member),
                        consent_refs=self.consent_refs(member),
                    )
                    for member, relationship in self._source.household(scored.record.key)
                ]
            answer.append(
                MatchCandidate(
                    ref=self._references.ref(scored.record.key),
                    score=round(scored.probability, 6),
                    match_weight=scored.match_weight,
                    agreements=scored.agreements,
                    tokens=self.tokens(scored.record),
                    consent_refs=self.consent_refs(scored.record),
                    household=household,
                )
            )
        return answer
