"""RFC 8785 (JSON Canonicalization Scheme) serialisation.

``rfc8785`` is the reference implementation we rely on, but it is pure Python and costs
about as much as an Ed25519 signature for a 2 KB message. ``orjson`` with sorted keys
produces the same bytes for almost every value the protocol carries: both escape exactly
the same characters and both print a non-integral float in the shortest round-trip form
with the same fixed/exponent thresholds below 1e16. Where they can differ (an integral
float such as ``1.0``, an exponent, an integer beyond 2**53, a key outside the Basic
Multilingual Plane whose UTF-16 order differs) the output shows a tell-tale pattern, and
we use ``rfc8785`` instead. A tell-tale pattern inside a string only costs speed. A
property test holds the two to the same output on arbitrary JSON.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import rfc8785

__all__ = ["CanonicalizationError", "canonical_json", "canonical_json_of_parsed"]

# Integral floats ("2.0") and exponents ("1e+16", "1e-07"). Substring search runs in C;
# the (rare) hits are then checked for a digit before them.
_SUSPECTS = (b".0,", b".0]", b".0}", b"e+", b"e-")
_DIGIT = re.compile(rb"\d")
_BELOW_F0 = bytes(range(0xF0))


class CanonicalizationError(ValueError):
    """The value cannot be expressed as RFC 8785 JSON (NaN, huge integer, bad text)."""


def _reference(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"no canonical JSON form: {exc}") from None


def canonical_json_of_parsed(value: Any) -> bytes:
    """Canonical JSON of a value that came out of a JSON parser.

    Such a value holds only JSON types and no NaN or infinity (which ``orjson`` would
    print as ``null``). Raises ``CanonicalizationError`` if it has no JCS form.
    """
    try:
        # STRICT_INTEGER refuses integers beyond 2**53, which JCS cannot express either.
        fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except (orjson.JSONEncodeError, TypeError):
        return _reference(value)
    if _may_differ(fast):
        return _reference(value)
    return fast


def _may_differ(encoded: bytes) -> bool:
    # A 4-byte UTF-8 lead byte: text outside the Basic Multilingual Plane, where UTF-16
    # and code point key order can disagree.
    if not encoded.isascii() and encoded.translate(None, _BELOW_F0):
        return True
    if encoded.endswith(b".0"):
        return True
    for suspect in _SUSPECTS:
        start = encoded.find(suspect)
        while start > 0:
            if _DIGIT.match(encoded, start - 1):
                return True
            start = encoded.find(suspect, start + 1)
    return False


def _has_non_finite(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            if not math.isfinite(item):
                return True
        elif type(item) is dict:
            stack.extend(item.values())
        elif type(item) is list or type(item) is tuple:
            stack.extend(item)
    return False


def canonical_json(value: Any) -> bytes:
    """Serialise any JSON-shaped Python value as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises ``CanonicalizationError`` if ``value`` has no JCS form (NaN, infinity, an
    integer beyond 2**53, a lone surrogate, a non-JSON type).
    """
    if _has_non_finite(value):
        raise CanonicalizationError("no canonical JSON form: NaN and infinity are not JSON")
    return canonical_json_of_parsed(value)
