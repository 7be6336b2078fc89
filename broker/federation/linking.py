"""Joining people across agencies from their linkage tokens (Fellegi-Sunter).

Each connector answers a match with its record of the subject and of the subject's
household, every one described only by keyed-HMAC tokens of normalised features (the
broker cannot read them, only compare them). Two records from different agencies are
compared feature by feature; each comparison level adds its log-likelihood ratio
log2(m/u) to a match weight, and the weight plus the prior gives the probability that the
two records are the same person.

The m and u probabilities are those of records *within one family*: two different
members of a household usually share a surname and always a postcode, so those features
say little, while given name, date of birth, sex and identifiers decide. Records linked
with a probability of at least ``accept`` are joined; those between ``review`` and
``accept`` are shown to the caseworker to confirm or reject. A person's decision,
recorded earlier, overrides the score. Two records of the same agency are never joined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "LinkDecisions",
    "LinkRecord",
    "Linkage",
    "Member",
    "PairLink",
    "compare_tokens",
    "link_records",
]

Tokens = Mapping[str, Sequence[str]]

# (level, m, u) per comparison, first matching level wins; "missing" adds nothing.
_GIVEN = (
    ("exact", 0.85, 0.02),
    ("nickname", 0.07, 0.005),
    ("similar", 0.05, 0.03),
    ("initial", 0.02, 0.08),
    ("different", 0.01, 0.865),
)
_FAMILY = (("exact", 0.85, 0.6), ("similar", 0.08, 0.1), ("different", 0.07, 0.3))
_DOB = (
    ("exact", 0.90, 0.001),
    ("day_month_swapped", 0.03, 0.0005),
    ("year_and_day_or_month", 0.04, 0.01),
    ("different", 0.03, 0.9885),
)
_SEX = (("same", 0.98, 0.5), ("different", 0.02, 0.5))
_IDENTIFIER = (("agree", 0.999, 1e-6), ("disagree", 0.001, 0.999999))
_PRIOR = 0.25
_SIMILAR_BIGRAMS = 0.4


def _tokens(tokens: Tokens, feature: str) -> set[str]:
    return set(tokens.get(feature, ()))


def _jaccard(left: set[str], right: set[str]) -> float:
    return len(left & right) / len(left | right) if left and right else 0.0


def _given_level(a: Tokens, b: Tokens) -> str | None:
    if not a.get("given_name") or not b.get("given_name"):
        return None
    if _tokens(a, "given_name") & _tokens(b, "given_name"):
        return "exact"
    if _tokens(a, "given_name_formal") & _tokens(b, "given_name_formal"):
        return "nickname"
    similar = _jaccard(_tokens(a, "given_name_bigrams"), _tokens(b, "given_name_bigrams"))
    if similar >= _SIMILAR_BIGRAMS:
        return "similar"
    if _tokens(a, "given_name_initial") & _tokens(b, "given_name_initial"):
        return "initial"
    return "different"


def _family_level(a: Tokens, b: Tokens) -> str | None:
    if not a.get("family_name") or not b.get("family_name"):
        return None
    if _tokens(a, "family_name") & _tokens(b, "family_name"):
        return "exact"
    similar = _jaccard(_tokens(a, "family_name_bigrams"), _tokens(b, "family_name_bigrams"))
    return "similar" if similar >= _SIMILAR_BIGRAMS else "different"


def _dob_level(a: Tokens, b: Tokens) -> str | None:
    if not a.get("date_of_birth") or not b.get("date_of_birth"):
        return None
    if _tokens(a, "date_of_birth") & _tokens(b, "date_of_birth"):
        return "exact"
    unordered = "dob_year_day_month_unordered"
    if _tokens(a, unordered) & _tokens(b, unordered):
        return "day_month_swapped"
    same_year = bool(_tokens(a, "dob_year") & _tokens(b, "dob_year"))
    same_part = bool(
        _tokens(a, "dob_month") & _tokens(b, "dob_month")
        or _tokens(a, "dob_day") & _tokens(b, "dob_day")
    )
    return "year_and_day_or_month" if same_year and same_part else "different"


def _sex_level(a: Tokens, b: Tokens) -> str | None:
    if not a.get("sex") or not b.get("sex"):
        return None
    return "same" if _tokens(a, "sex") & _tokens(b, "sex") else "different"


def _weight(table: tuple[tuple[str, float, float], ...], level: str) -> float:
    for name, m, u in table:
        if name == level:
            return math.log2(m / u)
    raise ValueError(level)


@dataclass(frozen=True, slots=True)
class PairScore:
    probability: float
    weight: float
    levels: dict[str, str]


def compare_tokens(a: Tokens, b: Tokens) -> PairScore:
    """Score two token sets: probability they are one person, and the level per feature."""
    levels: dict[str, str] = {}
    weight = math.log2(_PRIOR / (1 - _PRIOR))
    for feature, level_of, table in (
        ("given_name", _given_level, _GIVEN),
        ("family_name", _family_level, _FAMILY),
        ("date_of_birth", _dob_level, _DOB),
        ("sex", _sex_level, _SEX),
    ):
        level = level_of(a, b)
        if level is not None:
            levels[feature] = level
            weight += _weight(table, level)
    shared_ids = {f for f in a if f.startswith("id_")} & {f for f in b if f.startswith("id_")}
    for feature in sorted(shared_ids):
        level = "agree" if _tokens(a, feature) & _tokens(b, feature) else "disagree"
        levels[feature.removeprefix("id_")] = level
        weight += _weight(_IDENTIFIER, level)
    probability = 1.0 / (1.0 + 2.0 ** (-weight)) if weight > -1000 else 0.0
    return PairScore(probability, weight, levels)


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """One agency's record in a match answer."""

    agency_id: str
    ref: str
    tokens: Tokens
    is_subject: bool = False
    relationship: str | None = None
    match_score: float | None = None
    # The consent register's keys of the identifiers the agency holds for the record.
    consent_keys: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.agency_id}:{self.ref}"


@dataclass(frozen=True, slots=True)
class PairLink:
    left: str
    right: str
    probability: float
    levels: dict[str, str]
    decided_by: str = "score"


@dataclass
class Member:
    """One person as the broker sees them: the records of several agencies, joined."""

    member_id: str
    records: list[LinkRecord]
    is_subject: bool
    confidence: float
    links: list[PairLink] = field(default_factory=list)

    @property
    def relationship(self) -> str | None:
        if self.is_subject:
            return "subject"
        named = sorted({r.relationship for r in self.records if r.relationship})
        return " / ".join(named) if named else None

    @property
    def keys(self) -> set[str]:
        return {record.key for record in self.records}


@dataclass(frozen=True, slots=True)
class LinkDecisions:
    """Links a caseworker has confirmed or rejected before, as unordered key pairs."""

    confirmed: frozenset[frozenset[str]] = frozenset()
    rejected: frozenset[frozenset[str]] = frozenset()


@dataclass
class Linkage:
    members: list[Member]
    uncertain: list[PairLink]


def link_records(
    records: Iterable[LinkRecord],
    *,
    decisions: LinkDecisions | None = None,
    accept: float = 0.95,
    review: float = 0.5,
) -> Linkage:
    """Join records across agencies into members; list the links left uncertain."""
    decisions = decisions or LinkDecisions()
    items = list({record.key: record for record in records}.values())
    parent = {record.key: record.key for record in items}
    agencies = {record.key: {record.agency_id} for record in items}
    by_key = {record.key: record for record in items}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str, b: str) -> bool:
        ra, rb = root(a), root(b)
        if ra == rb:
            return True
        if agencies[ra] & agencies[rb]:
            return False  # one agency cannot hold the same person twice in one family
        parent[rb] = ra
        agencies[ra] |= agencies.pop(rb)
        return True

    candidates: list[PairLink] = []
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            if a.agency_id == b.agency_id:
                continue
            pair = frozenset((a.key, b.key))
            if pair in decisions.rejected:
                continue
            if a.is_subject and b.is_subject:
                # Each agency matched these to the caseworker's subject: one person.
                p = min(a.match_score or 1.0, b.match_score or 1.0)
                candidates.append(PairLink(a.key, b.key, p, {"subject": "matched"}, "subject"))
                continue
            score = compare_tokens(a.tokens, b.tokens)
            decided = "caseworker" if pair in decisions.confirmed else "score"
            probability = 1.0 if decided == "caseworker" else score.probability
            if probability >= review:
                candidates.append(PairLink(a.key, b.key, probability, score.levels, decided))

    accepted: list[PairLink] = []
    uncertain: list[PairLink] = []
    for link in sorted(candidates, key=lambda c: (c.decided_by != "caseworker", -c.probability)):
        certain = link.decided_by in ("caseworker", "subject") or link.probability >= accept
        if certain and join(link.left, link.right):
            accepted.append(link)
        elif not certain and root(link.left) != root(link.right):
            uncertain.append(link)

    clusters: dict[str, list[str]] = {}
    for record in items:
        clusters.setdefault(root(record.key), []).append(record.key)
    members = []
    for keys in clusters.values():
        key_set = set(keys)
        links = [link for link in accepted if link.left in key_set]
        confidence = min((link.probability for link in links), default=1.0)
        group = [by_key[k] for k in sorted(keys)]
        members.append(Member("", group, any(r.is_subject for r in group), confidence, links))
    members.sort(key=lambda m: (not m.is_subject, -len(m.records), sorted(m.keys)[0]))
    for number, member in enumerate(members, start=1):
        member.member_id = f"m{number}"
    # Uncertain links between records that ended up in one member are no longer open.
    open_links = [link for link in uncertain if root(link.left) != root(link.right)]
    return Linkage(members, open_links)
