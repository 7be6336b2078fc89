"""What a consent statement may name: purposes, agencies and fields that exist.

A statement naming a purpose, an agency or a field nobody uses, or filed under the
reference of an agency that does not exist, would be recorded and then never match: a
refusal with a misspelt purpose lets every agency share. So the register refuses such a
statement and names what it knows instead. What is known comes from the policy catalogue
in force (purposes, and the fields any purpose may release) and the registry (agencies,
and the fields their connectors offer), read at each change so a new agency or a policy
reload counts at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from broker.vocabulary import refuse_unknown

__all__ = ["ConsentVocabulary", "VocabularySource", "vocabulary_from"]


@dataclass(frozen=True, slots=True)
class ConsentVocabulary:
    """The purposes, agency ids and field names a consent statement may use."""

    purposes: frozenset[str]
    agencies: frozenset[str]
    fields: frozenset[str]

    def check(
        self,
        purpose: str,
        scope: Collection[str] | str,
        fields: Iterable[str],
        local_refs: Iterable[tuple[int, str]] = (),
    ) -> None:
        """Raise ``InvalidChange`` naming the first unknown purpose, agency or field, and
        (as ``location``) the member of the statement it is in.

        ``local_refs`` are the statement's ``local_ref`` identifiers with their places
        in its list: each must be an agency's that is registered, or no record of any
        agency would ever carry it.
        """
        refuse_unknown(
            "purpose", [purpose], self.purposes, "in the policy catalogue", location="purpose"
        )
        if not isinstance(scope, str):
            refuse_unknown(
                "agency",
                scope,
                self.agencies,
                "registered",
                hint="or scope 'all'",
                location="scope",
            )
        where = "offered by any agency or allowed for any purpose"
        refuse_unknown("field", fields, self.fields, where, location="restricted_fields")
        for place, reference in local_refs:
            agency = reference.split(":", 1)[0]
            refuse_unknown(
                "local_ref agency",
                [agency],
                self.agencies,
                "registered",
                location=f"identifiers.{place}.value",
            )


VocabularySource = Callable[[], ConsentVocabulary]


def vocabulary_from(
    catalogue: Mapping[str, Any], agencies: Mapping[str, Iterable[str]]
) -> ConsentVocabulary:
    """Build from the policy catalogue and ``agencies`` (id to the fields it offers)."""
    purposes = catalogue.get("purposes", {})
    fields = {
        name
        for purpose in purposes.values()
        for allowed in purpose.get("field_allow", {}).values()
        for name in allowed
    }
    for offered in agencies.values():
        fields.update(offered)
    return ConsentVocabulary(frozenset(purposes), frozenset(agencies), frozenset(fields))
