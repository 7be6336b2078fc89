"""RFC 8785 canonical JSON: the published examples, and agreement with the reference."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import CanonicalizationError, canonical_json, canonical_json_of_parsed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # RFC 8785 section 3.2.2.3: ECMAScript number serialisation.
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (333333333.33333329, "333333333.3333333"),
        (1e23, "1e+23"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740991, "9007199254740991"),
        (-9007199254740991, "-9007199254740991"),
        (295147905179352830000.0, "295147905179352830000"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000000000000000000000000001, "1e-27"),
    ],
)
def test_numbers_follow_ecmascript(value: float, expected: str) -> None:
    assert canonical_json(value) == expected.encode()


def test_the_rfc_8785_section_3_2_2_example() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"\u002f",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode()


def test_keys_sort_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the sorting example.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_unicode_is_written_as_utf8_not_escaped() -> None:
    assert canonical_json({"name": "Zoë Ó Briain"}) == '{"name":"Zoë Ó Briain"}'.encode()


def test_control_characters_are_escaped_in_lowercase_hex() -> None:
    assert canonical_json("\x1f\n\t") == b'"\\u001f\\n\\t"'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 2**53, {"k": [1, math.nan]}])
def test_values_without_a_canonical_form_are_refused(bad: Any) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_json(bad)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=1500)
@given(json_values)
def test_agrees_with_the_reference_implementation(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=500)
@given(json_values)
def test_parsed_values_agree_with_the_reference_implementation(value: Any) -> None:
    parsed = json.loads(json.dumps(value))
    assert canonical_json_of_parsed(parsed) == rfc8785.dumps(parsed)
