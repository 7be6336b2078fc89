"""The subject access report: every recorded access to one person's data.

It answers "who looked at my data": who, when, which agency, why (purpose and legal
basis) and which fields were released, by name only (the broker never holds the
values). The caseworkers' free-text justifications are left out: they may speak of
other people, and an IG officer reads them in the audit search before disclosing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from audit.entry import Kind, StoredEntry
from audit.log import AuditLog
from audit.search import SearchQuery
from broker.errors import InvalidRequest
from broker.identity.principal import Principal
from broker.oversight.schemas import (
    Identifier,
    SubjectAccessIn,
    SubjectAccessReport,
    SubjectAccessRow,
)
from broker.oversight.service import OversightService, read_all, translate

__all__ = ["SubjectAccessReports", "render_html"]

_TEMPLATES = Path(__file__).with_name("templates")
_environment = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# The kinds in which an agency was asked about the person (by_agency counts these).
_ASKED = frozenset({Kind.MATCH.value, Kind.FETCH.value})
_WHAT = {
    Kind.QUERY_SUBMITTED.value: "family query asked",
    Kind.REFUSAL.value: "family query refused",
    Kind.MATCH.value: "agency asked whether it holds records",
    Kind.FETCH.value: "records fetched from the agency",
    Kind.RELEASE.value: "results shown to the caseworker",
    Kind.BREAK_GLASS.value: "emergency access (break-glass)",
    Kind.CONSENT_CHANGE.value: "consent recorded or changed",
    Kind.LINK_CONFIRMED.value: "records linked across agencies",
    Kind.ACCESS_REVIEW.value: "access reviewed by an IG officer",
    Kind.ERASURE.value: "record of an access erased",
    Kind.AUDIT_ACCESS.value: "audit records searched by an IG officer",
    Kind.CONSENT_LOOKUP.value: "consent records looked up",
}


def _masked(identifier: Identifier) -> str:
    value = "".join(identifier.value.split())
    if identifier.kind == "local_ref":
        agency = value.partition(":")[0]
        return f"{agency} reference ending {value[-3:]}"
    return f"{identifier.kind} ending {value[-4:]}" if len(value) > 4 else identifier.kind


# An officer's read of the audit records, by what they did (the entry's reason).
_READ = {
    "subject_access_report": "subject access report made by an IG officer",
    "audit_entry": "audit entry read by an IG officer",
}


def _what(entry: StoredEntry) -> str:
    if entry.kind == Kind.AUDIT_ACCESS.value:
        for reason in entry.fields.get("reasons", ()):
            if reason in _READ:
                return _READ[reason]
    return _WHAT.get(entry.kind, entry.kind)


def _row(entry: StoredEntry) -> SubjectAccessRow:
    fields = entry.fields
    return SubjectAccessRow(
        index=entry.index,
        time=entry.time,
        what=_what(entry),
        kind=entry.kind,
        who=str(fields["actor"]),
        who_agency=fields.get("actor_agency"),
        agency=fields.get("counterparty_agency"),
        purpose=fields.get("purpose"),
        legal_basis=fields.get("legal_basis"),
        decision=fields.get("decision"),
        fields_released=list(fields.get("fields_released", [])),
        query_id=fields.get("query_id"),
    )


class SubjectAccessReports:
    """Builds subject access reports from the audit log."""

    def __init__(self, oversight: OversightService, audit: AuditLog) -> None:
        self._oversight = oversight
        self._audit = audit

    def report(self, principal: Principal, body: SubjectAccessIn) -> SubjectAccessReport:
        """Every entry filed under any of the identifiers, oldest first.

        The report is itself logged (``OversightService.record_access``) before it is
        returned. Raises ``InvalidRequest`` for a malformed identifier,
        ``StoreUnavailable`` if the log cannot be read or cannot record the report.
        """
        if body.since is not None and body.until is not None and body.since >= body.until:
            raise InvalidRequest("'since' must be earlier than 'until'")
        found: dict[int, StoredEntry] = {}
        refs = self._oversight.references(body.identifiers)
        for ref in refs:
            query = SearchQuery(subject=ref, since=body.since, until=body.until)
            found.update((e.index, e) for e in read_all(self._audit, query))
        rows = [_row(found[i]) for i in sorted(found)]
        with translate():
            latest = self._audit.latest_checkpoint()
        agencies: Counter[str] = Counter(r.agency for r in rows if r.agency and r.kind in _ASKED)
        # Logged once the report is ready and before it is given: it lists no entry of its own.
        self._oversight.record_access(
            principal,
            refs,
            "subject_access_report",
            body.model_dump(mode="json", exclude={"identifiers"}),
        )
        return SubjectAccessReport(
            generated_at=self._oversight.clock(),
            generated_by=principal.subject,
            identifiers=[_masked(i) for i in body.identifiers],
            tree_size=latest.size if latest else None,
            accesses=rows,
            by_agency=dict(sorted(agencies.items())),
        )


def render_html(report: SubjectAccessReport) -> str:
    """The report as a printable, accessible HTML page."""
    template = _environment.get_template("subject_access.html")
    return template.render(report=report, rows=report.accesses)
