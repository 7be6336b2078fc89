"""Person identifiers: whether a value is one, and the one way each kind is written.

Every identifier a caseworker or an IG officer types passes through ``canonical`` before
it is used, so ``943-476-5919``, ``943 476 5919`` and ``9434765919`` are one NHS number:
one keyed subject reference, one value sent to the agencies. Check digits are
python-stdnum's (``stdnum.gb.nhs``, ``stdnum.gb.upn``); the National Insurance number
has no check digit, only the format HMRC allocates.

A value already in its canonical form is returned as it is, so the references made of
it before this check existed are unchanged. Messages name the kind and what is wrong,
never the value: it is personal data, and errors are logged and shown.
"""

from __future__ import annotations

import re

from stdnum.exceptions import InvalidChecksum, InvalidComponent, ValidationError
from stdnum.gb import nhs, upn

__all__ = ["KINDS", "canonical"]

KINDS = ("nhs_number", "upn", "ni_number", "uprn", "local_ref")
"""Every kind ``canonical`` knows; a person's subject reference is made from all but uprn."""

# An agency's own reference as a family view shows it: ``<agency>:<reference>``.
_LOCAL_REF = re.compile(r"[a-z][a-z0-9_-]{1,62}:\S.*")

# People type NHS numbers in groups of three, three and four, with spaces or hyphens.
_SEPARATORS = re.compile(r"[\s-]+")
# HMRC National Insurance Manual NIM39110: the first letter is not D, F, I, Q, U or V;
# the second is not D, F, I, O, Q, U or V; six digits; a suffix A, B, C or D.
_NI_SHAPE = re.compile(r"[A-Z]{2}[0-9]{6}[A-D]")
_NI_PREFIX = re.compile(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]")
# ...and these prefixes are never allocated either.
_NI_UNUSED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_UPRN = re.compile(r"[0-9]{1,12}")


def canonical(kind: str, value: str) -> str:
    """``value`` as an identifier of ``kind``, written the one way Junction writes it.

    NHS numbers are ten digits; unique pupil numbers and National Insurance numbers are
    upper case; spaces and hyphens between characters are dropped; a ``local_ref`` is
    only trimmed. Raises ``ValueError`` naming the kind and what is wrong with the value.
    """
    if kind == "local_ref":
        return _local_ref(value)
    compact = _SEPARATORS.sub("", value).upper()
    if kind == "nhs_number":
        return _nhs_number(compact)
    if kind == "upn":
        return _upn(compact)
    if kind == "ni_number":
        return _ni_number(compact)
    if kind == "uprn":
        if not _UPRN.fullmatch(compact):
            raise ValueError("uprn must be 1 to 12 digits")
        return compact
    raise ValueError(f"identifier kind {kind!r} is not known; use one of {', '.join(KINDS)}")


def _nhs_number(compact: str) -> str:
    try:
        return str(nhs.validate(compact))
    except InvalidChecksum:
        raise ValueError(
            "nhs_number fails its check digit: check it was copied correctly"
        ) from None
    except ValidationError:
        raise ValueError(
            "nhs_number must be 10 digits; spaces or hyphens between them are fine"
        ) from None


def _upn(compact: str) -> str:
    try:
        return str(upn.validate(compact))
    except InvalidChecksum:
        raise ValueError("upn fails its check letter: check it was copied correctly") from None
    except InvalidComponent:
        raise ValueError(
            "upn does not begin with a known local authority number after its check letter"
        ) from None
    except ValidationError:
        raise ValueError(
            "upn must be 13 characters: a check letter, 11 digits, then a digit or a letter"
        ) from None


def _ni_number(compact: str) -> str:
    if not _NI_SHAPE.fullmatch(compact):
        raise ValueError(
            "ni_number must read two letters, six digits and a letter A to D, e.g. AB123456C"
        )
    if not _NI_PREFIX.fullmatch(compact[:2]) or compact[:2] in _NI_UNUSED:
        raise ValueError("ni_number begins with letters HMRC never issues: check the number")
    return compact


def _local_ref(value: str) -> str:
    trimmed = value.strip()
    if not _LOCAL_REF.fullmatch(trimmed):
        raise ValueError("a local_ref reads '<agency>:<reference>', e.g. 'council:C-1042'")
    return trimmed
