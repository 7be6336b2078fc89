"""Linkage tokens: keyed HMACs of a person's normalised features.

Every connector normalises the same way and keys the HMAC with the linkage key it
shares with the other connectors (never with the broker). Two agencies holding the same
person therefore send equal tokens for the features they agree on, and the broker can
compare them without learning a name, a date of birth or a postcode.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from connectors.matching.compare import normalise_name, postcode_district, postcode_sector
from connectors.matching.nicknames import formal_names
from connectors.protocol.messages import LinkageTokens
from connectors.sources import normalise_postcode

__all__ = ["LinkageKey", "linkage_tokens", "name_bigrams"]

_TOKEN_HEX = 32


@dataclass(frozen=True, slots=True)
class LinkageKey:
    """The secret all connectors share for tokens, and the id the manifest announces."""

    key_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise ValueError("a linkage key needs at least 32 bytes of secret")

    def token(self, feature: str, value: str) -> str:
        """The token of one feature value; the feature name is bound in."""
        message = f"{feature}\x00{value}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:_TOKEN_HEX]


def name_bigrams(name: str) -> list[str]:
    """The distinct letter pairs of a normalised name, sorted."""
    return sorted({name[i : i + 2] for i in range(len(name) - 1)})


def linkage_tokens(
    key: LinkageKey,
    *,
    given_name: str | None,
    family_name: str | None,
    date_of_birth: dt.date | None,
    postcode: str | None,
    sex: str | None = None,
    identifiers: dict[str, str] | None = None,
) -> LinkageTokens:
    """Tokens per feature (names, name bigrams, date of birth and its parts, postcode
    parts, sex, identifiers); a missing value gives no tokens for its features."""
    features: dict[str, list[str]] = {}
    given, family = normalise_name(given_name), normalise_name(family_name)
    if given:
        features["given_name"] = [given]
        features["given_name_formal"] = sorted(formal_names(given))
        features["given_name_bigrams"] = name_bigrams(given)
        features["given_name_initial"] = [given[0]]
    if family:
        features["family_name"] = [family]
        features["family_name_bigrams"] = name_bigrams(family)
    if date_of_birth is not None:
        features["date_of_birth"] = [date_of_birth.isoformat()]
        features["dob_year"] = [str(date_of_birth.year)]
        features["dob_month"] = [str(date_of_birth.month)]
        features["dob_day"] = [str(date_of_birth.day)]
        # Unordered day and month: equal under a day/month swap.
        low, high = sorted((date_of_birth.day, date_of_birth.month))
        features["dob_year_day_month_unordered"] = [f"{date_of_birth.year}-{low}-{high}"]
    code = normalise_postcode(postcode)
    if code:
        features["postcode"] = [code]
        features["postcode_sector"] = [postcode_sector(code)]
        features["postcode_district"] = [postcode_district(code)]
    if sex in ("F", "M"):
        features["sex"] = [sex]
    for name, value in sorted((identifiers or {}).items()):
        cleaned = value.replace(" ", "").upper()
        if cleaned:
            features[f"id_{name}"] = [cleaned]
    return {
        feature: [key.token(feature, value) for value in values]
        for feature, values in features.items()
        if values
    }
