"""Building the family view a caseworker reads from what the flow gathered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from broker.federation.client import CallOutcome
from broker.federation.linking import Linkage, PairLink
from broker.queries.needs import assess_needs
from broker.queries.schemas import (
    AgencyStatusView,
    FactView,
    FamilyQueryRequest,
    FamilyView,
    LinkView,
    MemberView,
    ReasonView,
    ReceiptView,
    RecordView,
    RetentionView,
    WithheldView,
)
from connectors.protocol.messages import FetchResponse
from policies.model import ExchangeDecision, FamilyDecision, Obligation, Reason

__all__ = ["ViewBuilder", "link_id"]


def link_id(left: str, right: str) -> str:
    """A stable id for the (unordered) pair of records ``left`` and ``right``."""
    return "|".join(sorted((left, right)))


def _link_view(link: PairLink, member_of: dict[str, str]) -> LinkView:
    return LinkView(
        link_id=link_id(link.left, link.right),
        left=link.left,
        right=link.right,
        left_member=member_of.get(link.left),
        right_member=member_of.get(link.right),
        confidence=round(link.probability, 4),
        explanation=dict(link.levels),
        decided_by=link.decided_by,
    )


class ViewBuilder:
    """Collects the parts of one ``FamilyView`` as the flow produces them."""

    def __init__(
        self, query_id: str, request: FamilyQueryRequest, created_at: dt.datetime, digest: str
    ) -> None:
        self._query_id = query_id
        self._request = request
        self._created_at = created_at
        self.policy_digest = digest
        self.refused = False
        self._refusal: list[ReasonView] = []
        self._obligations: list[ReasonView] = []
        self._members: dict[str, MemberView] = {}
        self._member_of: dict[str, str] = {}
        self._uncertain: list[LinkView] = []
        self._statuses: list[AgencyStatusView] = []
        self._flags: list[str] = []
        self._unanswered: frozenset[str] = frozenset()
        self._retention_days: int | None = None

    def refuse(self, reasons: Iterable[Reason]) -> None:
        self.refused = True
        self._refusal = [ReasonView(code=r.code, text=r.text) for r in reasons]

    def obligations(self, obligations: Iterable[Obligation]) -> None:
        self._obligations = [ReasonView(code=o.code, text=o.text) for o in obligations]

    def members(self, linkage: Linkage) -> None:
        for member in linkage.members:
            for record in member.records:
                self._member_of[record.key] = member.member_id
        for member in linkage.members:
            self._members[member.member_id] = MemberView(
                member_id=member.member_id,
                is_subject=member.is_subject,
                relationship=member.relationship,
                confidence=round(member.confidence, 4),
                links=[_link_view(link, self._member_of) for link in member.links],
                records=[
                    RecordView(agency_id=r.agency_id, ref=r.ref, match_score=r.match_score)
                    for r in member.records
                ],
                known_to=[],
                facts={},
                withheld=[],
            )
        self._uncertain = [_link_view(link, self._member_of) for link in linkage.uncertain]

    def _member(self, agency: str, ref: str) -> MemberView | None:
        member_id = self._member_of.get(f"{agency}:{ref}")
        return self._members.get(member_id) if member_id else None

    def add_facts(
        self, agency: str, outcome: CallOutcome[FetchResponse], decision: FamilyDecision
    ) -> list[str]:
        """Place released facts under their members; return the fields released."""
        answer = outcome.message
        if answer is None:
            return []
        released = []
        for person in answer.persons:
            member = self._member(agency, person.ref)
            if member is None:
                continue
            if person.facts:
                # The answer was screened against the decision: every person in it has one.
                self._keep(decision.exchange(agency, person.ref).retention_days)
            for fact in person.facts:
                domain = fact.field.split(".", 1)[0]
                member.facts.setdefault(domain, []).append(
                    FactView(
                        field=fact.field, value=fact.value, source_agency=agency, as_of=fact.as_of
                    )
                )
                released.append(fact.field)
            for withheld in person.withheld:
                member.withheld.append(
                    WithheldView(
                        agency_id=agency,
                        field=withheld.field,
                        code=withheld.code,
                        reason=withheld.reason,
                    )
                )
            if person.refusal is not None:
                member.withheld.append(
                    WithheldView(
                        agency_id=agency,
                        field=None,
                        code=person.refusal.code,
                        reason=person.refusal.reason,
                    )
                )
        return released

    def add_decision(self, exchange: ExchangeDecision) -> None:
        """Record what policy withheld, and 'known to service' where that is all it allows."""
        member = self._member(exchange.agency_id, exchange.person_ref)
        if member is None:
            return
        if exchange.allow and exchange.tier == "known_to_service":
            member.known_to.append(exchange.agency_id)
            # That the agency knows the person is itself what it released.
            self._keep(exchange.retention_days)
        if exchange.allow:
            held = {o.code for o in self._obligations}
            self._obligations += [
                ReasonView(code=o.code, text=o.text)
                for o in exchange.obligations
                if o.code not in held
            ]
        if not exchange.allow:
            reason = exchange.reasons[0] if exchange.reasons else None
            member.withheld.append(
                WithheldView(
                    agency_id=exchange.agency_id,
                    field=None,
                    code=reason.code if reason else "not_permitted",
                    reason=reason.text if reason else "policy does not permit sharing this",
                )
            )
            return
        for withheld in exchange.withheld:
            member.withheld.append(
                WithheldView(
                    agency_id=exchange.agency_id,
                    field=withheld.field,
                    code=withheld.code,
                    reason=withheld.text,
                )
            )

    def statuses(self, statuses: Iterable[AgencyStatusView], order: Sequence[str]) -> None:
        rank = {agency: i for i, agency in enumerate(order)}
        self._statuses = sorted(statuses, key=lambda s: rank.get(s.agency_id, len(rank)))

    def flags(self, flags: Iterable[str]) -> None:
        self._flags = list(flags)

    def unanswered(self, fields: Iterable[str]) -> None:
        """The fields offered by agencies that did not answer: the needs they bear on
        cannot be judged unmet."""
        self._unanswered = frozenset(fields)

    def _keep(self, days: int) -> None:
        """Bind what the answer released to ``days`` of keeping, if fewer than so far."""
        if self._retention_days is None or days < self._retention_days:
            self._retention_days = days

    def _retention(self) -> RetentionView | None:
        """How long what was released may be kept, counted from the query's (UTC) date."""
        if self._retention_days is None:
            return None
        asked = self._created_at.astimezone(dt.UTC).date()
        return RetentionView(
            days=self._retention_days,
            keep_until=asked + dt.timedelta(days=self._retention_days),
        )

    def build(
        self,
        *,
        entries: list[int],
        release_entry: int,
        checkpoint: str | None,
        tree_size: int | None,
    ) -> FamilyView:
        members = list(self._members.values())
        for member in members:
            for facts in member.facts.values():
                facts.sort(key=lambda f: (f.field, f.source_agency))
        needs = assess_needs(
            (
                (member.member_id, fact)
                for member in members
                for facts in member.facts.values()
                for fact in facts
            ),
            self._unanswered,
        )
        status = (
            "refused"
            if self.refused
            else (
                "complete"
                if all(s.status in ("ok", "no_record", "withheld") for s in self._statuses)
                else "partial"
            )
        )
        return FamilyView(
            query_id=self._query_id,
            status=status,
            created_at=self._created_at,
            purpose=self._request.purpose,
            legal_basis=self._request.legal_basis,
            refusal=self._refusal,
            obligations=self._obligations,
            retention=self._retention(),
            agencies=self._statuses,
            members=members,
            uncertain_links=self._uncertain,
            needs=needs if not self.refused else [],
            flags=self._flags,
            policy_digest=self.policy_digest,
            receipt=ReceiptView(
                entries=entries,
                release_entry=release_entry,
                checkpoint=checkpoint,
                tree_size=tree_size,
                proofs=f"/v1/family-queries/{self._query_id}/receipt",
            ),
        )
