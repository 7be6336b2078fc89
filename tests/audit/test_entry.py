"""Entries: canonical leaves, commitments instead of personal data, subject references."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from audit.canonical import canonical_json
from audit.entry import Entry, Kind, commitment, leaf_bytes, parse_leaf, prepare, subject_reference
from audit.errors import EntryError
from tests.audit.conftest import make_entry

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def test_leaf_is_canonical_json_without_private_values() -> None:
    prepared = prepare(make_entry(3), NOW)
    leaf = leaf_bytes(prepared.body, 41)
    data = orjson.loads(leaf)
    assert canonical_json(data) == leaf
    assert data["index"] == 41
    assert data["v"] == 1
    assert b"Concern raised" not in leaf
    assert b"C-3" not in leaf
    assert parse_leaf(leaf) == (41, data["entry"])
    opened = {o.name: o for o in prepared.openings}
    for name, digest in data["entry"]["commitments"].items():
        assert commitment(opened[name].salt, opened[name].value) == digest
    assert data["entry"]["time"] == "2025-06-01T12:00:00.000000Z"


def test_commitments_are_salted() -> None:
    first = prepare(make_entry(3), NOW)
    second = prepare(make_entry(3), NOW)
    assert first.body != second.body


def test_subject_references_normalise_and_need_the_key() -> None:
    key = b"s" * 32
    assert subject_reference(key, "NHS_Number", "943 476 5919") == subject_reference(
        key, "nhs_number", "9434765919"
    )
    assert subject_reference(key, "nhs_number", "9434765919") != subject_reference(
        b"t" * 32, "nhs_number", "9434765919"
    )
    with pytest.raises(EntryError):
        subject_reference(b"short", "nhs_number", "1")
    with pytest.raises(EntryError):
        subject_reference(key, "nhs_number", "   ")


@pytest.mark.parametrize(
    "entry",
    [
        Entry(kind=Kind.FETCH, actor=""),
        Entry(kind="nonsense", actor="a"),  # type: ignore[arg-type]
        Entry(kind=Kind.FETCH, actor="a", subjects=("not-a-reference",)),
        Entry(kind=Kind.FETCH, actor="a" * 201),
        Entry(kind=Kind.FETCH, actor="a", private={"Name": "x"}),
        Entry(kind=Kind.ERASURE, actor="a", erases=-1),
        Entry(kind=Kind.FETCH, actor="a", reasons=(float("nan"),)),  # type: ignore[arg-type]
    ],
)
def test_invalid_entries_are_refused_with_a_reason(entry: Entry) -> None:
    with pytest.raises(EntryError):
        prepare(entry, NOW)


def test_parse_leaf_refuses_foreign_bytes() -> None:
    with pytest.raises(EntryError):
        parse_leaf(b'{"something": "else"}')
    with pytest.raises(EntryError):
        parse_leaf(b"\x00")
