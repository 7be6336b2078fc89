"""Normalisation and the comparison levels of the match model.

The levels here are the ones ``train.py`` declares to Splink as SQL, in the same order:
a level's learned m and u probabilities only mean something if request-time code puts a
pair in the same level the training did. Names are compared after ``normalise_name``
(lower case, letters only), the form linkage tokens use too.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import jellyfish

from connectors.matching.nicknames import formal_names
from connectors.sources import SourceRecord, normalise_postcode

__all__ = [
    "COMPARISONS",
    "NULL",
    "compare",
    "compare_dob",
    "compare_family_name",
    "compare_given_name",
    "compare_postcode",
    "compare_sex",
    "normalise_name",
    "postcode_district",
    "postcode_sector",
]

NULL = "null"
# Every comparison and its levels, strongest first; "null" means one side is missing.
COMPARISONS: dict[str, tuple[str, ...]] = {
    "given_name": ("exact", "nickname", "jw_high", "jw_mid", "initial", "different"),
    "family_name": ("exact", "jw_high", "jw_mid", "different"),
    "date_of_birth": ("exact", "day_month_swap", "two_parts", "different"),
    "postcode": ("exact", "sector", "district", "different"),
    "sex": ("exact", "different"),
}
JW_HIGH = 0.92
JW_MID = 0.80

_NOT_LETTERS = re.compile(r"[^a-z]")


def normalise_name(value: str | None) -> str | None:
    """``"O'Brien-Smith "`` -> ``"obriensmith"``; accents folded; ``None`` when empty."""
    if value is None:
        return None
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    cleaned = _NOT_LETTERS.sub("", folded.lower())
    return cleaned or None


def postcode_sector(postcode: str) -> str:
    """``"NB1 2AB"`` -> ``"NB1 2"``."""
    return postcode[:-2]


def postcode_district(postcode: str) -> str:
    """``"NB1 2AB"`` -> ``"NB1"``."""
    return postcode.split(" ", maxsplit=1)[0]


def _jw(left: str, right: str) -> float:
    return float(jellyfish.jaro_winkler_similarity(left, right))


def compare_given_name(left: str | None, right: str | None) -> str:
    a, b = normalise_name(left), normalise_name(right)
    if a is None or b is None:
        return NULL
    if a == b:
        return "exact"
    if formal_names(a) & formal_names(b):
        return "nickname"
    similarity = _jw(a, b)
    if similarity >= JW_HIGH:
        return "jw_high"
    if similarity >= JW_MID:
        return "jw_mid"
    return "initial" if a[0] == b[0] else "different"


def compare_family_name(left: str | None, right: str | None) -> str:
    a, b = normalise_name(left), normalise_name(right)
    if a is None or b is None:
        return NULL
    if a == b:
        return "exact"
    similarity = _jw(a, b)
    if similarity >= JW_HIGH:
        return "jw_high"
    return "jw_mid" if similarity >= JW_MID else "different"


def compare_dob(left: dt.date | None, right: dt.date | None) -> str:
    if left is None or right is None:
        return NULL
    if left == right:
        return "exact"
    if left.year == right.year and left.day == right.month and left.month == right.day:
        return "day_month_swap"
    same = (left.year == right.year) + (left.month == right.month) + (left.day == right.day)
    return "two_parts" if same >= 2 else "different"


def compare_postcode(left: str | None, right: str | None) -> str:
    a, b = normalise_postcode(left), normalise_postcode(right)
    if a is None or b is None:
        return NULL
    if a == b:
        return "exact"
    if postcode_sector(a) == postcode_sector(b):
        return "sector"
    return "district" if postcode_district(a) == postcode_district(b) else "different"


def compare_sex(left: str | None, right: str | None) -> str:
    if left not in ("F", "M") or right not in ("F", "M"):
        return NULL
    return "exact" if left == right else "different"


def compare(
    *,
    given_name: str | None,
    family_name: str | None,
    date_of_birth: dt.date | None,
    postcode: str | None,
    sex: str | None,
    record: SourceRecord,
) -> dict[str, str]:
    """The level of each comparison between what is known of a subject and a record."""
    return {
        "given_name": compare_given_name(given_name, record.given_name),
        "family_name": compare_family_name(family_name, record.family_name),
        "date_of_birth": compare_dob(date_of_birth, record.date_of_birth),
        "postcode": compare_postcode(postcode, record.postcode),
        "sex": compare_sex(sex, record.sex),
    }
