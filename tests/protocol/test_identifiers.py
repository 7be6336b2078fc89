"""Person identifiers: one written form per kind, and a plain reason when a value is not one."""

from __future__ import annotations

import re

import pytest

from audit.entry import subject_reference
from broker.errors import InvalidChange
from broker.subjects import SubjectKeys
from connectors.protocol.identifiers import canonical

KEY = b"k" * 32


@pytest.mark.parametrize(
    ("kind", "typed", "written"),
    [
        ("nhs_number", "9434765919", "9434765919"),
        ("nhs_number", "943 476 5919", "9434765919"),
        ("nhs_number", "943-476-5919", "9434765919"),
        ("nhs_number", " 943\t476-5919 ", "9434765919"),
        ("nhs_number", "4010232137", "4010232137"),
        ("nhs_number", "".join(chr(0xFF10 + int(d)) for d in "9434765919"), "9434765919"),
        ("upn", "B801200005001", "B801200005001"),
        ("upn", "b801 2000 05001", "B801200005001"),
        ("upn", "Y801200114002", "Y801200114002"),
        ("ni_number", "AB123456C", "AB123456C"),
        ("ni_number", "ab 12 34 56 c", "AB123456C"),
        ("ni_number", "OA123456D", "OA123456D"),
        ("uprn", "100023336956", "100023336956"),
        ("uprn", "1", "1"),
        ("local_ref", " police:P-2231 ", "police:P-2231"),
    ],
)
def test_a_valid_identifier_is_written_one_way(kind: str, typed: str, written: str) -> None:
    assert canonical(kind, typed) == written


@pytest.mark.parametrize(
    ("kind", "typed", "words"),
    [
        ("nhs_number", "9434765918", "nhs_number fails its check digit"),
        ("nhs_number", "4857773456", "nhs_number fails its check digit"),
        ("nhs_number", "abc", "nhs_number must be 10 digits"),
        ("nhs_number", "943476591", "nhs_number must be 10 digits"),
        ("nhs_number", "94347659190", "nhs_number must be 10 digits"),
        ("nhs_number", "943.476.5919", "nhs_number must be 10 digits"),
        ("nhs_number", " - ", "nhs_number must be 10 digits"),
        ("upn", "A123", "upn must be 13 characters"),
        ("upn", "A801200005001", "upn fails its check letter"),
        ("upn", "X80120000A001", "upn must be 13 characters"),
        ("upn", "E000200005001", "upn does not begin with a known local authority"),
        ("ni_number", "JK123456", "ni_number must read two letters"),
        ("ni_number", "JK123456E", "ni_number must read two letters"),
        ("ni_number", "A1234567C", "ni_number must read two letters"),
        ("ni_number", "QQ123456C", "ni_number begins with letters HMRC never issues"),
        ("ni_number", "DA123456C", "ni_number begins with letters HMRC never issues"),
        ("ni_number", "AO123456C", "ni_number begins with letters HMRC never issues"),
        ("ni_number", "GB123456A", "ni_number begins with letters HMRC never issues"),
        ("ni_number", "ZZ123456A", "ni_number begins with letters HMRC never issues"),
        ("uprn", "1000233369561", "uprn must be 1 to 12 digits"),
        ("uprn", "UPRN1", "uprn must be 1 to 12 digits"),
        ("local_ref", "P-2231", "a local_ref reads '<agency>:<reference>'"),
        ("passport", "X", "identifier kind 'passport' is not known"),
    ],
)
def test_a_value_that_is_not_an_identifier_is_refused_with_the_reason(
    kind: str, typed: str, words: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(words)}") as caught:
        canonical(kind, typed)
    assert typed.strip() not in str(caught.value), "the message echoed the value"


def test_an_nhs_number_has_one_reference_however_it_is_typed() -> None:
    keys = SubjectKeys(KEY)
    references = {
        keys.reference("nhs_number", typed)
        for typed in ("9434765919", "943 476 5919", "943-476-5919", "943 - 476 - 5919")
    }
    assert len(references) == 1


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("nhs_number", "9434765919"),
        ("nhs_number", "943 476 5919"),
        ("upn", "B801200005001"),
        ("upn", "b801200005001"),
        ("ni_number", "AB123456C"),
        ("local_ref", "police:P-2231"),
        ("local_ref", "school:UPN 778"),
    ],
)
def test_references_already_on_record_are_unchanged(kind: str, value: str) -> None:
    # Consent registers and audit logs hold references of values written like these;
    # they must still be found.
    assert SubjectKeys(KEY).reference(kind, value) == subject_reference(KEY, kind, value)


def test_a_reference_is_refused_for_a_value_that_is_not_an_identifier() -> None:
    with pytest.raises(InvalidChange, match="nhs_number fails its check digit"):
        SubjectKeys(KEY).reference("nhs_number", "9434765918")
