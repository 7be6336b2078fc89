"""Agency sources: where a connector reads people and facts, per request, never copied.

``open_source(mapping)`` returns the source its mapping's ``source.kind`` names. Every
source has the same shape (``Source``): ``check()``, ``block(subject, limit)``,
``household(record_key)``, ``fetch(record_keys, fields)``, ``flags(record_keys)`` and
``close()``.
"""

from __future__ import annotations

from connectors.mapping import CsvSourceSpec, Mapping
from connectors.sources._base import Clock, FetchResult, Source, SourceRecord, normalise_postcode
from connectors.sources._sql_engine import parse_source_url
from connectors.sources.csv import CsvSource
from connectors.sources.sql import SqlSource

__all__ = [
    "Clock",
    "CsvSource",
    "FetchResult",
    "Source",
    "SourceRecord",
    "SqlSource",
    "normalise_postcode",
    "open_source",
    "parse_source_url",
]


def open_source(mapping: Mapping, *, clock: Clock | None = None) -> Source:
    """The source the mapping describes (not yet checked: call ``check()``).

    Raises:
        MappingError: the source's URL or kind cannot be used.
    """
    if isinstance(mapping.source, CsvSourceSpec):
        return CsvSource(mapping, clock=clock) if clock else CsvSource(mapping)
    return SqlSource(mapping, clock=clock) if clock else SqlSource(mapping)
