"""Consent references: one reference per identifier, however it was typed, under one key."""

from __future__ import annotations

import pytest

from connectors.protocol.consent_refs import ConsentKey

KEY = ConsentKey(b"k" * 32)


def test_an_identifier_typed_two_ways_has_one_reference() -> None:
    assert KEY.ref("nhs_number", "943-476-5919") == KEY.ref("nhs_number", "9434765919")
    assert KEY.ref("upn", "b801200005001") == KEY.ref("upn", "B801200005001")
    assert KEY.refs({"nhs_number": "943 476 5919", "upn": "B801200005001"}) == sorted(
        [KEY.ref("nhs_number", "9434765919"), KEY.ref("upn", "B801200005001")]
    )


def test_references_under_another_key_differ() -> None:
    assert KEY.ref("ni_number", "AB123456C") != ConsentKey(b"j" * 32).ref("ni_number", "AB123456C")
    assert KEY.key_id != ConsentKey(b"j" * 32).key_id
    assert KEY.key_id == ConsentKey(b"k" * 32).key_id


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("uprn", "100023336956"),  # a home, shared by everyone living there
        ("local_ref", "police:P-2231"),  # one agency's own, never an identifier it holds
        ("nhs_number", "9434765918"),  # fails its check digit: an agency's typing mistake
        ("passport", "123456789"),
    ],
)
def test_only_valid_identifiers_that_name_one_person_make_a_reference(
    kind: str, value: str
) -> None:
    assert KEY.ref(kind, value) is None
    assert KEY.refs({kind: value}) == []


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ConsentKey(b"short")
