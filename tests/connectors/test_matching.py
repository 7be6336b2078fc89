"""Local matching: accuracy on a synthetic town, explanations, tokens and references."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import MappingError, UnknownReference
from connectors.matching.compare import compare_dob, compare_given_name, compare_postcode
from connectors.matching.evaluate import evaluate, subject_of
from connectors.matching.matcher import IDENTIFIER_RULE, Matcher
from connectors.matching.model import MatchModel
from connectors.matching.references import LocalReferences
from connectors.matching.tokens import LinkageKey, linkage_tokens
from connectors.protocol.consent_refs import ConsentKey
from connectors.protocol.messages import MatchCandidate, Subject
from connectors.sources import SqlSource
from connectors.synth import AGENCY_NAMES
from tests.connectors.source_kit import agency_mapping, clock, write_town

TOWN_PEOPLE = 3000
LINKAGE = LinkageKey("linkage-1", b"L" * 32)


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("town")
    return out, write_town(out, TOWN_PEOPLE, seed=13)


@pytest.fixture(scope="module")
def matchers(town: tuple[Path, Any]) -> Iterator[dict[str, tuple[Matcher, LocalReferences]]]:
    directory, _ = town
    model = MatchModel.load()
    built = {}
    sources = []
    for agency in AGENCY_NAMES:
        source = SqlSource(agency_mapping(agency, directory), clock=clock)
        sources.append(source)
        references = LocalReferences(agency, agency.encode() * 8)
        built[agency] = (
            Matcher(source, model=model, linkage_key=LINKAGE, references=references),
            references,
        )
    yield built
    for source in sources:
        source.close()


@pytest.mark.slow
@pytest.mark.parametrize("agency", AGENCY_NAMES)
def test_matching_meets_the_accuracy_targets_per_agency(
    town: tuple[Path, Any], matchers: dict[str, tuple[Matcher, LocalReferences]], agency: str
) -> None:
    _, truth = town
    matcher, references = matchers[agency]
    result = evaluate(agency, truth, matcher, references)
    assert result.subjects_held >= 100
    assert result.precision >= 0.99, result
    assert result.recall >= 0.95, result
    assert result.household_recall >= 0.90, result


def _held(truth: Any, agency: str, index: int) -> tuple[dict[str, Any], str]:
    key, person_id = sorted(truth["agencies"][agency].items())[index]
    return next(p for p in truth["people"] if p["person_id"] == person_id), key


def test_an_identifier_agreeing_with_date_of_birth_matches_first(
    town: tuple[Path, Any], matchers: dict[str, tuple[Matcher, LocalReferences]]
) -> None:
    _, truth = town
    matcher, references = matchers["health"]
    for index in range(20):
        person, key = _held(truth, "health", index)
        subject = Subject(
            given_name="Completely",
            family_name="Different",
            date_of_birth=dt.date.fromisoformat(person["date_of_birth"]),
            identifiers={"nhs_number": person["nhs_number"]},
        )
        candidates = matcher.match(subject, max_candidates=5)
        if candidates and candidates[0].agreements.get("rule") == IDENTIFIER_RULE:
            assert references.key(candidates[0].ref) == key
            assert candidates[0].score == 1.0
            assert len(candidates) == 1
            return
    pytest.fail("no identifier match among twenty patients")


def test_a_match_explains_itself_and_carries_no_facts(
    town: tuple[Path, Any], matchers: dict[str, tuple[Matcher, LocalReferences]]
) -> None:
    _, truth = town
    matcher, references = matchers["benefits"]
    person, key = _held(truth, "benefits", 0)
    candidates = matcher.match(subject_of(person, with_identifiers=False), max_candidates=3)
    assert references.key(candidates[0].ref) == key
    top = candidates[0]
    assert set(top.agreements) <= {
        "given_name",
        "family_name",
        "date_of_birth",
        "postcode",
        "sex",
        "identifier",
        "rule",
    }
    assert top.agreements["date_of_birth"] in {"exact", "day_month_swap", "two_parts", "different"}
    assert set(MatchCandidate.model_fields) == {
        "ref",
        "score",
        "match_weight",
        "agreements",
        "tokens",
        "consent_refs",
        "household",
    }
    dumped = top.model_dump_json()
    assert person["family_name"] not in dumped
    assert person["date_of_birth"] not in dumped
    assert key not in dumped


def test_a_stranger_gets_no_candidates(
    matchers: dict[str, tuple[Matcher, LocalReferences]],
) -> None:
    matcher, _ = matchers["health"]
    stranger = Subject(
        given_name="Zebedee",
        family_name="Quixotically",
        date_of_birth=dt.date(1901, 2, 3),
        postcode="ZZ9 9ZZ",
    )
    assert matcher.match(stranger) == []


def test_household_members_come_back_as_references_and_tokens(
    town: tuple[Path, Any], matchers: dict[str, tuple[Matcher, LocalReferences]]
) -> None:
    _, truth = town
    matcher, references = matchers["housing"]
    for index in range(30):
        person, _ = _held(truth, "housing", index)
        candidates = matcher.match(subject_of(person, with_identifiers=False))
        if candidates and candidates[0].household:
            member = candidates[0].household[0]
            assert references.key(member.ref) in truth["agencies"]["housing"]
            assert member.relationship in {"lead tenant", "joint tenant", "household member"}
            assert {"given_name", "family_name", "date_of_birth"} <= set(member.tokens)
            without = matcher.match(
                subject_of(person, with_identifiers=False), include_household=False
            )
            assert without[0].household == []
            return
    pytest.fail("no household among thirty tenants")


def test_tokens_agree_across_agencies_for_the_same_person() -> None:
    a = linkage_tokens(
        LINKAGE,
        given_name="Bill",
        family_name="O'Brien",
        date_of_birth=dt.date(1984, 3, 7),
        postcode="nb1 2ab",
        identifiers={"nhs_number": "485 777 3457"},
    )
    b = linkage_tokens(
        LINKAGE,
        given_name="WILLIAM",
        family_name="OBRIEN",
        date_of_birth=dt.date(1984, 7, 3),
        postcode="NB12AB",
        identifiers={"nhs_number": "4857773457"},
    )
    assert a["family_name"] == b["family_name"]
    assert a["postcode"] == b["postcode"]
    assert a["id_nhs_number"] == b["id_nhs_number"]
    assert set(a["given_name_formal"]) & set(b["given_name_formal"])
    assert a["date_of_birth"] != b["date_of_birth"]
    assert a["dob_year_day_month_unordered"] == b["dob_year_day_month_unordered"]
    other_key = linkage_tokens(
        LinkageKey("linkage-2", b"M" * 32),
        given_name="Bill",
        family_name="O'Brien",
        date_of_birth=None,
        postcode=None,
    )
    assert other_key["family_name"] != a["family_name"]
    assert "obrien" not in str(a)


def test_references_are_stable_opaque_and_unforgeable() -> None:
    refs = LocalReferences("police", b"s" * 32)
    ref = refs.ref("PN0500001")
    assert ref == refs.ref("PN0500001")
    assert "PN0500001" not in ref
    assert refs.key(ref) == "PN0500001"
    with pytest.raises(UnknownReference):
        LocalReferences("health", b"s" * 32).key(ref)
    with pytest.raises(UnknownReference):
        refs.key(ref[:-2] + ("A" if ref[-2] != "A" else "B") + ref[-1])
    with pytest.raises(UnknownReference):
        refs.key("'; DROP TABLE PERSON; --")


def test_comparison_levels() -> None:
    assert compare_given_name("Bill", "William") == "nickname"
    assert compare_given_name("Jonathon", "Jonathan") == "jw_high"
    assert compare_given_name("Sarah", None) == "null"
    assert compare_dob(dt.date(2010, 3, 7), dt.date(2010, 7, 3)) == "day_month_swap"
    assert compare_dob(dt.date(2010, 3, 7), dt.date(2010, 3, 8)) == "two_parts"
    assert compare_postcode("NB1 2AB", "nb12ax") == "sector"
    assert compare_postcode("NB1 2AB", "NB1 3CD") == "district"


def test_the_shipped_parameters_load_and_bad_ones_are_refused(tmp_path: Path) -> None:
    model = MatchModel.load()
    assert (
        model.bayes_factors["date_of_birth"]["exact"]
        > model.bayes_factors["date_of_birth"]["two_parts"]
        > 0
    )
    assert model.bayes_factors["given_name"]["different"] < 0
    broken = tmp_path / "params.json"
    broken.write_text('{"comparisons": {}}')
    with pytest.raises(MappingError, match="malformed"):
        MatchModel.load(broken)


def test_candidates_carry_consent_references_of_the_identifiers_they_hold(
    town: tuple[Path, Any],
) -> None:
    directory, truth = town
    consent = ConsentKey(b"C" * 32)
    source = SqlSource(agency_mapping("health", directory), clock=clock)
    references = LocalReferences("health", b"health" * 8)
    keyed = Matcher(
        source,
        model=MatchModel.load(),
        linkage_key=LINKAGE,
        references=references,
        consent_key=consent,
    )
    unkeyed = Matcher(source, model=MatchModel.load(), linkage_key=LINKAGE, references=references)
    try:
        person = next(
            truth["people"][i]
            for i in range(len(truth["people"]))
            if "health" in truth["people"][i]["records"] and truth["people"][i].get("nhs_number")
        )
        subject = subject_of(person, with_identifiers=False)
        top = keyed.match(subject, max_candidates=1)[0]
        plain = unkeyed.match(subject, max_candidates=1)[0]
    finally:
        source.close()
    assert top.ref == plain.ref
    assert consent.ref("nhs_number", person["nhs_number"]) in top.consent_refs
    assert plain.consent_refs == []
    assert person["nhs_number"] not in top.model_dump_json()
