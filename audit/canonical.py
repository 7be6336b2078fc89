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

__all__ = [
    "CanonicalizationError",
    "canonical_json",
    "canonical_json_of_parsed",
    "has_non_finite",
    "may_differ_from_jcs",
]

# Integral floats ("2.0") and exponents ("1e+16", "1e-6") are where orjson and JCS part.
# Substring search runs in C; the (rare) hits are then checked for a digit before them.
_CLOSERS = frozenset((b",", b"]", b"}"))
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
    if may_differ_from_jcs(fast):
        return _reference(value)
    return fast


def may_differ_from_jcs(encoded: bytes) -> bool:
    """True when sorted ``orjson`` output might not be the RFC 8785 form (rarely)."""
    # A 4-byte UTF-8 lead byte: text outside the Basic Multilingual Plane, where UTF-16
    # and code point key order can disagree.
    if not encoded.isascii() and encoded.translate(None, _BELOW_F0):
        return True
    if encoded.endswith(b".0"):
        return True
    # Integral floats: ".0" then a closing character. One scan for ".0", its (few) hits
    # checked in place, costs a third of a scan per closing character.
    start = encoded.find(b".0", 1)
    while start > 0:
        if encoded[start + 2 : start + 3] in _CLOSERS and _DIGIT.match(encoded, start - 1):
            return True
        start = encoded.find(b".0", start + 2)
    # Exponents: "e+" never appears without a "+", which one memchr rules out.
    for suspect in (b"e-", b"e+") if b"+" in encoded else (b"e-",):
        start = encoded.find(suspect, 1)
        while start > 0:
            if _DIGIT.match(encoded, start - 1):
                return True
            start = encoded.find(suspect, start + 1)
    return False


def has_non_finite(value: Any) -> bool:
    """True when ``value`` holds a NaN or an infinity anywhere inside it."""
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
    if has_non_finite(value):
        raise CanonicalizationError("no canonical JSON form: NaN and infinity are not JSON")
    return canonical_json_of_parsed(value)
