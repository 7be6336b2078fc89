"""The agency's mapped source and matcher, seen through the service's ``AgencySource``.

The wire speaks in opaque local references; the source speaks in the agency's own record
keys. This adapter turns one into the other (``LocalReferences``), so the service never
handles a record key and the source never sees a reference. A reference that this
agency did not issue, or that was altered, is simply unknown: it finds nobody.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.errors import UnknownReference
from connectors.matching.matcher import Matcher
from connectors.matching.references import LocalReferences
from connectors.protocol.messages import FieldOffer, MatchCandidate, Subject
from connectors.service.ports import FetchResult
from connectors.sources import Source

__all__ = ["MappedAgency"]


class MappedAgency:
    """Implements ``AgencySource`` over a mapping's ``Source`` and its ``Matcher``."""

    def __init__(self, source: Source, matcher: Matcher, references: LocalReferences) -> None:
        self.source = source
        self._matcher = matcher
        self._references = references
        self._offers = source.mapping.offers()

    def offered_fields(self) -> Sequence[FieldOffer]:
        return self._offers

    def match(
        self, subject: Subject, *, include_household: bool, max_candidates: int
    ) -> Sequence[MatchCandidate]:
        return self._matcher.match(
            subject, max_candidates=max_candidates, include_household=include_household
        )

    def flags(self, refs: list[str]) -> dict[str, frozenset[str]]:
        keys = self._keys(refs)
        found = self.source.flags(list(dict.fromkeys(keys.values())))
        return {ref: found[key] for ref, key in keys.items() if key in found}

    def fetch(self, refs: list[str], fields: list[str]) -> FetchResult:
        keys = self._keys(refs)
        found = self.source.fetch(list(dict.fromkeys(keys.values())), fields)
        return {ref: found[key] for ref, key in keys.items() if key in found}

    def check(self) -> None:
        """Validate the mapping against the live source. Raises ``MappingError``."""
        self.source.check()

    def close(self) -> None:
        self.source.close()

    def _keys(self, refs: list[str]) -> dict[str, str]:
        keys: dict[str, str] = {}
        for ref in refs:
            try:
                keys[ref] = self._references.key(ref)
            except UnknownReference:
                continue
        return keys
