"""What every source returns, and the value rules SQL and CSV sources share."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from connectors.mapping import FieldSpec, Mapping, NameCase
from connectors.protocol.messages import FactValue, FieldType, Subject

__all__ = [
    "Clock",
    "FetchResult",
    "Source",
    "SourceRecord",
    "cutoff",
    "date_format_problem",
    "dob_candidates",
    "name_variants",
    "normalise_postcode",
    "parse_date",
    "to_datetime",
    "to_fact",
]

Clock = Callable[[], dt.datetime]
FetchResult = dict[str, dict[str, tuple[FactValue, dt.datetime]]]

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One person as the agency's source holds them, in canonical shape (no facts)."""

    key: str
    given_name: str | None
    family_name: str | None
    date_of_birth: dt.date | None = None
    sex: str | None = None
    postcode: str | None = None
    uprn: str | None = None
    identifiers: dict[str, str] = field(default_factory=dict)


class Source(Protocol):
    """An agency's own system, read per request and never copied."""

    mapping: Mapping

    def check(self) -> None:
        """Validate the mapping against the live source. Raises ``MappingError``."""
        ...

    def block(self, subject: Subject, limit: int) -> list[SourceRecord]:
        """Candidate records sharing an indexed value with ``subject``. Raises ``SourceError``."""
        ...

    def household(self, record_key: str) -> list[tuple[SourceRecord, str]]:
        """The other members of the record's household and their relationship."""
        ...

    def fetch(self, record_keys: list[str], fields: list[str]) -> FetchResult:
        """Exactly ``fields`` for each known key, with as-of times. Raises ``UnknownField``."""
        ...

    def flags(self, record_keys: list[str]) -> dict[str, frozenset[str]]:
        """The protective flags that are set, per known key."""
        ...

    def close(self) -> None:
        """Release pooled connections."""
        ...


def normalise_postcode(value: str | None) -> str | None:
    """``"ab1 2cd"`` -> ``"AB1 2CD"``; ``None`` when it is not shaped like a UK postcode."""
    if value is None:
        return None
    compact = re.sub(r"[^A-Za-z0-9]", "", value).upper()
    match = _POSTCODE.match(compact)
    if match is None:
        return None
    return f"{match.group(1)} {match.group(2)}"


def name_variants(value: str, case: NameCase) -> list[str]:
    """The spellings under which a source storing names in ``case`` may hold ``value``."""
    value = value.strip()
    if case is NameCase.UPPER:
        return [value.upper()]
    if case is NameCase.LOWER:
        return [value.lower()]
    capitalised = re.sub(
        r"[A-Za-z]+", lambda m: m.group(0)[0].upper() + m.group(0)[1:].lower(), value
    )
    return sorted({value, capitalised})


def dob_candidates(dob: dt.date) -> list[dt.date]:
    """The date itself and, when it is a valid date, its day/month swap."""
    dates = [dob]
    if dob.day != dob.month and dob.day <= 12:
        dates.append(dob.replace(month=dob.day, day=dob.month))
    return dates


def parse_date(value: object, fmt: str | None) -> dt.date | None:
    """A date from a date/datetime value, or from text in ``fmt`` (ISO when absent)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        if fmt is not None:
            return dt.datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a date, no zone
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


DATE_SAMPLE = 50
"""How many stored dates of birth ``check`` reads to see that their format fits."""
_DIGIT = re.compile(r"[0-9]")


def date_format_problem(values: Iterable[object], fmt: str, column: str) -> str | None:
    """Why ``values`` (a sample of a text column) do not fit ``fmt``, or None if they do.

    A few values that do not parse are the agency's data errors; more than a fifth is a
    wrong format, which would leave every date of birth unknown. The message shows a
    failing value's shape (digits as 9), never the value: it is personal data.
    """
    texts = [str(v).strip() for v in values if v is not None and str(v).strip()]
    failing = [text for text in texts if parse_date(text, fmt) is None]
    if not texts or len(failing) * 5 <= len(texts):
        return None
    shape = _DIGIT.sub("9", failing[0])
    return (
        f"{len(failing)} of the first {len(texts)} values of {column} do not match "
        f"format {fmt!r} (one is shaped {shape!r})"
    )


def to_datetime(value: object, fallback: dt.datetime) -> dt.datetime:
    """An aware UTC datetime for an as-of value; ``fallback`` when there is none."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return fallback


def cutoff(today: dt.date, *, months: int | None, days: int | None) -> dt.date:
    """The first date inside a window of the last ``months`` or ``days`` up to ``today``."""
    if days is not None:
        return today - dt.timedelta(days=days)
    assert months is not None  # noqa: S101 - WindowSpec guarantees one of the two
    total = today.year * 12 + (today.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    day = min(today.day, 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
    return dt.date(year, month, day)


def to_fact(spec: FieldSpec, raw: object) -> FactValue:
    """Convert a raw column or aggregate value to the field's declared type."""
    if raw is not None and spec.codes:
        raw = spec.codes.get(str(raw), raw)
    if raw is None:
        return False if spec.type is FieldType.BOOLEAN and spec.aggregate is not None else None
    if spec.type is FieldType.BOOLEAN:
        if isinstance(raw, str):
            return raw.strip().lower() in {"1", "true", "t", "y", "yes"}
        return bool(raw)
    if spec.type is FieldType.DATE:
        parsed = parse_date(raw, None)
        return parsed.isoformat() if parsed else None
    if spec.type in (FieldType.INTEGER, FieldType.NUMBER):
        number = raw if isinstance(raw, int | float) else float(str(raw))
        if spec.scale is not None:
            number = number * spec.scale
        if spec.type is FieldType.INTEGER:
            return round(number)
        return round(float(number), 4)
    return str(raw)


def first_seen(values: Iterable[str]) -> list[str]:
    """Unique values in their first order."""
    return list(dict.fromkeys(values))
