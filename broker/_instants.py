"""The times policy can compare.

Rego's ``time.parse_rfc3339_ns`` counts nanoseconds since 1970 in 64 bits, so it holds
1677-09-21 to 2262-04-11; a stored time outside that would make every decision that
reads it fail. Requests are held to the round years inside, as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

__all__ = ["SPAN", "WrittenTime", "comparable", "in_utc", "not_a_number"]

_EARLIEST = datetime(1678, 1, 1, tzinfo=UTC)
_AFTER_LATEST = datetime(2262, 1, 1, tzinfo=UTC)
SPAN = "between 1678-01-01 and 2261-12-31 in UTC"
"""The range in words, for a message naming a member that falls outside it."""


def in_utc(value: datetime) -> datetime | None:
    """``value`` in UTC, or ``None`` when that is before year 1 or after year 9999 (an
    offset on 0001-01-01 or 9999-12-31 can take it there)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def comparable(utc: datetime | None) -> bool:
    """Whether policy can compare ``utc`` (an ``in_utc`` result) with the time now."""
    return utc is not None and _EARLIEST <= utc < _AFTER_LATEST


def not_a_number(value: object) -> object:
    """``value``, unless it is a number or a string of digits: pydantic would read one as
    seconds since 1970, so that a date written 20260101 became one in August 1970."""
    digits = isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if digits or number:
        raise ValueError("must be a time such as 2026-01-01T00:00:00Z, not a number")
    return value


WrittenTime = Annotated[AwareDatetime, BeforeValidator(not_a_number)]
"""A time a caller writes: with its offset, and never a number of seconds."""
