"""The family query, end to end (see DESIGN.md, "One family query").

submit check -> match at every agency policy allows -> link people across agencies ->
one policy decision for every (agency, person) -> signed fetches carrying only the
permitted fields -> every answer checked against the decision -> audit entries durable
-> release. Every exchange that crosses a boundary is one audit entry, written before
anything from it is released; the answer always comes back, with each agency's status.

The flow waits only where it must. Each entry is queued to the log as soon as its
exchange is known and the query goes on; all of them are awaited together, once, before
the release (group commit makes that one wait). The blocking reads between two steps
(registry, consent, link decisions, the log's checkpoint) are one trip off the event
loop each, not one per read.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from audit.entry import Decision, Entry, Kind
from audit.errors import AuditError
from audit.log import AuditLog
from broker.errors import BrokerError, Forbidden, NotFound
from broker.federation.client import CallOutcome, CallStatus, ConnectorClient, ConnectorEndpoint
from broker.federation.linking import Linkage, LinkDecisions, LinkRecord, link_records
from broker.identity.principal import Principal, agency_not_registered
from broker.queries.ports import (
    BundleDecider,
    ConnectorInfo,
    ConsentReader,
    LinkRegister,
    PolicyDecider,
    QueryMetrics,
    QueryRecords,
    RegistryReader,
)
from broker.queries.render import ViewBuilder
from broker.queries.schemas import AgencyStatusView, FamilyQueryRequest, FamilyView, ReasonView
from broker.subjects import IDENTIFIER_KINDS, SubjectKeys, consent_register_key
from broker.vocabulary import refuse_unknown
from connectors.protocol.messages import (
    FetchPerson,
    FetchRequest,
    FetchResponse,
    FetchStatus,
    HouseholdMember,
    MatchCandidate,
    MatchRequest,
    MatchResponse,
    MatchStatus,
    Subject,
)
from policies.model import (
    BreakGlass,
    ExchangeDecision,
    FamilyDecision,
    FamilyQueryInput,
    OfferedField,
    Person,
    Provider,
    QueryRequest,
    Requester,
    SharingAgreement,
)

__all__ = ["FamilyQueryService", "QuerySettings"]

_log = structlog.get_logger("junction.queries")
SUBJECT_PROBE = "subject"


@dataclass(frozen=True, slots=True)
class QuerySettings:
    deadline_seconds: float = 5.0
    agency_timeout_seconds: float = 3.0
    accept_match_score: float = 0.9
    link_accept: float = 0.95
    link_review: float = 0.5


@dataclass
class _Run:
    """Everything one query accumulates on its way through the flow."""

    query_id: str
    principal: Principal
    request: FamilyQueryRequest
    now: dt.datetime
    started: float
    subject_refs: list[str]
    # The consent register's keys of the caseworker's identifiers for the subject.
    consent_keys: list[str] = field(default_factory=list)
    # Per "agency:ref" of every record an agency answered with: the audit references of
    # the identifiers it holds (from its consent references).
    held: dict[str, list[str]] = field(default_factory=dict)
    entries: list[int] = field(default_factory=list)
    statuses: dict[str, AgencyStatusView] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    # The size of the newest checkpoint of our log each agency holds, from its match answer.
    checkpoint_sizes: dict[str, int] = field(default_factory=dict)
    # Appends queued to the log and not yet awaited; all are awaited before the release.
    pending: list[asyncio.Task[int]] = field(default_factory=list)
    _agreements: dict[str, list[SharingAgreement]] = field(default_factory=dict)
    _requester_type: str | None = None

    def agreements_with(self, agency: str, registry: RegistryReader) -> list[SharingAgreement]:
        """The agreements between the caller's agency and ``agency``, read once a query."""
        if agency not in self._agreements:
            self._agreements[agency] = registry.agreements_between(
                self.principal.agency, agency, self.now
            )
        return self._agreements[agency]

    def requester_type(self, registry: RegistryReader) -> str:
        """The type of the caller's agency. Raises ``Forbidden`` if it is not registered."""
        if self._requester_type is None:
            try:
                self._requester_type = registry.agency_type(self.principal.agency)
            except NotFound:
                raise agency_not_registered(self.principal) from None
        return self._requester_type


class FamilyQueryService:
    """Runs family queries. One instance per broker process; safe for concurrent use."""

    def __init__(
        self,
        *,
        client: ConnectorClient,
        registry: RegistryReader,
        consents: ConsentReader,
        links: LinkRegister,
        records: QueryRecords,
        policy: PolicyDecider,
        audit: AuditLog,
        subjects: SubjectKeys,
        settings: QuerySettings | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        metrics: QueryMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._client = client
        self._registry = registry
        self._consents = consents
        self._links = links
        self._records = records
        self._policy = policy
        self._audit = audit
        self._subjects = subjects
        self._settings = settings or QuerySettings()
        self._clock = clock

    # -- the flow -----------------------------------------------------------------------

    async def run(self, principal: Principal, request: FamilyQueryRequest) -> FamilyView:
        """Answer one family query.

        Raises ``InvalidChange`` for a condition or reason the policy catalogue does not
        know (a misspelt one would otherwise read as none named) or a field no agency
        taking part offers, and ``Forbidden`` if
        the caller's agency is not registered, before any agency is asked (that refusal
        is logged under the person asked about); any other ``BrokerError`` only if
        nothing can be audited.
        """
        self._check_names(request)
        run = _Run(
            query_id=uuid.uuid4().hex,
            principal=principal,
            request=request,
            now=self._clock(),
            started=time.monotonic(),
            subject_refs=self._subject_references(request),
            consent_keys=self._subjects.consent_keys(
                sorted(request.subject.identifier_values().items())
            ),
        )
        async with self._policy.pinned() as policy:
            return await self._run(run, policy)

    def _check_names(self, request: FamilyQueryRequest) -> None:
        catalogue = self._policy.catalogue
        where = "in the policy catalogue"
        refuse_unknown(
            "condition", request.conditions, frozenset(catalogue.get("conditions", {})), where
        )
        if request.consent_not_sought_reason is not None:
            reasons = frozenset(catalogue.get("consent_not_sought_reasons", {}))
            refuse_unknown("reason", [request.consent_not_sought_reason], reasons, where)

    async def _run(self, run: _Run, policy: BundleDecider) -> FamilyView:
        request = run.request
        try:
            connectors, query = await asyncio.to_thread(self._begin, run)
        except Forbidden:
            await self._record_unregistered(run, self._policy.digest)
            raise
        if request.fields is not None:
            # A misspelt field would otherwise read as one no agency may share.
            offered = frozenset(f.name for c in connectors for f in c.fields)
            where = "offered by any agency taking part"
            refuse_unknown("field", request.fields, offered, where, location="fields")
        for connector in connectors:
            # Registry changes take effect on the next query, without a restart.
            self._client.trust(connector.agency_id, connector.public_key)
        eligibility = await self._decide(policy, query)
        self._record_submission(run, eligibility)
        view = ViewBuilder(run.query_id, request, run.now, eligibility.bundle_digest)
        if not eligibility.allow:
            view.refuse(eligibility.submit.reasons)
            return await self._release(run, view, released_fields=())
        view.obligations(eligibility.submit.obligations)

        eligible = [c for c in connectors if self._may_match(eligibility, c, run)]
        matches = await self._match_all(run, eligible)
        records = self._link_records(matches)
        by_agency = {c.agency_id: c for c in eligible}
        persons = {
            agency: [r.ref for r in records if r.agency_id == agency]
            for agency in {r.agency_id for r in records}
        }
        between = await asyncio.to_thread(
            self._between, run, records, [by_agency[a] for a in persons], persons
        )
        view.members(between.linkage)
        decision = await self._decide(policy, between.query)
        fetched = await self._fetch_all(run, by_agency, decision, persons, between)
        released: list[str] = []
        for agency, outcome in fetched.items():
            released += view.add_facts(agency, outcome, decision)
        for exchange in decision.exchanges:
            view.add_decision(exchange)
        view.statuses(run.statuses.values(), [c.agency_id for c in connectors])
        view.flags(run.flags)
        view.unanswered(
            field.name
            for connector in connectors
            if run.statuses[connector.agency_id].status in ("timeout", "error")
            for field in connector.fields
        )
        return await self._release(run, view, released_fields=released)

    def _begin(self, run: _Run) -> tuple[list[ConnectorInfo], FamilyQueryInput]:
        """The registry read and the submit check's input: one trip off the loop."""
        connectors = list(self._registry.connectors_for_matching())
        return connectors, self._policy_input(run, connectors, None)

    def _between(
        self,
        run: _Run,
        records: list[LinkRecord],
        connectors: Sequence[ConnectorInfo],
        persons: dict[str, list[str]],
    ) -> _Between:
        """What the fetch needs once the matches are in, in one trip off the loop: the
        family graph (with the caseworkers' earlier link decisions), the policy input for
        every (agency, person), and the log's checkpoint with consistency proofs."""
        confirmed, rejected = self._links.decisions_for([r.key for r in records])
        linkage = link_records(
            records,
            decisions=LinkDecisions(frozenset(confirmed), frozenset(rejected)),
            accept=self._settings.link_accept,
            review=self._settings.link_review,
        )
        if linkage.uncertain:
            self._links.remember_uncertain(
                run.query_id,
                run.principal.subject,
                [(link.left, link.right, link.probability) for link in linkage.uncertain],
            )
        query = self._policy_input(run, connectors, (persons, linkage))
        checkpoint, proofs = self._checkpoint_for_fetch(run)
        return _Between(linkage, query, checkpoint, proofs)

    # -- policy ---------------------------------------------------------------------------

    async def _decide(self, policy: BundleDecider, query: FamilyQueryInput) -> FamilyDecision:
        started = time.perf_counter()
        decision = await policy.decide(query)
        if self._metrics is not None:
            self._metrics.policy_decided(time.perf_counter() - started)
        return decision

    def _policy_input(
        self,
        run: _Run,
        connectors: Sequence[ConnectorInfo],
        persons: tuple[dict[str, list[str]], Linkage] | None,
    ) -> FamilyQueryInput:
        request = run.request
        principal = run.principal
        query = QueryRequest(
            requester=Requester(
                agency_id=principal.agency,
                agency_type=run.requester_type(self._registry),
                role=principal.policy_role,
            ),
            purpose=request.purpose,
            legal_basis=request.legal_basis,
            gateway=request.gateway,
            case_reference=request.case_reference,
            justification=request.justification,
            conditions=request.conditions,
            consent_not_sought_reason=request.consent_not_sought_reason,
            override_reason=request.override_reason,
            break_glass=(
                BreakGlass(
                    reason_code=request.break_glass.reason_code,
                    text=request.break_glass.text,
                    started_at=run.now,
                )
                if request.break_glass
                else None
            ),
            time=run.now,
        )
        linkage = persons[1] if persons else None
        refs_by_agency = {
            c.agency_id: [SUBJECT_PROBE] if persons is None else persons[0].get(c.agency_id, [])
            for c in connectors
        }
        keys = {
            (agency, ref): self._person_keys(run, agency, ref, linkage)
            for agency, refs in refs_by_agency.items()
            for ref in refs
        }
        # One read of the consent register for everyone in the query.
        everyone = {key for group in keys.values() for key in group}
        found = self._consents.consents_for(everyone, request.purpose, run.now)
        restricted = self._consents.restrictions_for(everyone, request.purpose, run.now)
        providers = []
        for connector in connectors:
            offered = [
                OfferedField.model_validate({"name": f.name, "sensitivity": f.sensitivity})
                for f in connector.fields
            ]
            wanted = [f.name for f in connector.fields]
            if request.fields is not None:
                wanted = [name for name in wanted if name in request.fields]
            agency = connector.agency_id
            providers.append(
                Provider(
                    agency_id=agency,
                    agency_type=connector.agency_type,
                    agreements=run.agreements_with(agency, self._registry),
                    fields=offered,
                    requested_fields=wanted,
                    persons=[
                        Person(
                            ref=ref,
                            consents=[c for key in keys[agency, ref] for c in found.get(key, [])],
                            restricted_fields=sorted(
                                {f for key in keys[agency, ref] for f in restricted.get(key, ())}
                            ),
                        )
                        for ref in refs_by_agency[agency]
                    ],
                )
            )
        return FamilyQueryInput(request=query, providers=providers)

    def _person_keys(self, run: _Run, agency: str, ref: str, linkage: Linkage | None) -> list[str]:
        """Every key consent for this person may have been recorded under: the local
        references of all the records joined to it, the identifiers those records hold
        (as the agencies' consent references), and the caseworker's identifiers when it
        is the subject."""
        given = run.subject_refs + run.consent_keys
        if ref == SUBJECT_PROBE:
            return given
        key = f"{agency}:{ref}"
        member = next((m for m in linkage.members if key in m.keys), None) if linkage else None
        if member is None:
            return [self._local_key(agency, ref)]
        keys = [self._local_key(r.agency_id, r.ref) for r in member.records]
        held = [k for r in member.records for k in r.consent_keys]
        return keys + held + (given if member.is_subject else [])

    def _may_match(self, decision: FamilyDecision, connector: ConnectorInfo, run: _Run) -> bool:
        try:
            exchange = decision.exchange(connector.agency_id, SUBJECT_PROBE)
        except KeyError:
            exchange = None
        if exchange is not None and exchange.allow and exchange.tier != "none":
            return True
        reasons = [
            ReasonView(code=r.code, text=r.text) for r in (exchange.reasons if exchange else [])
        ]
        run.statuses[connector.agency_id] = AgencyStatusView(
            agency_id=connector.agency_id,
            agency_name=connector.agency_name,
            status="withheld",
            detail="policy does not allow asking this agency for this purpose",
            reasons=reasons,
        )
        return False

    # -- audit ----------------------------------------------------------------------------

    def _subject_references(self, request: FamilyQueryRequest) -> list[str]:
        return [
            self._subjects.reference(kind, value)
            for kind, value in sorted(request.subject.identifier_values().items())
            if kind in IDENTIFIER_KINDS
        ]

    def _local_key(self, agency: str, ref: str) -> str:
        return self._subjects.reference("local_ref", f"{agency}:{ref}")

    def _queue(self, run: _Run, entry: Entry) -> asyncio.Task[int]:
        """Queue one entry of the query to the log and go on; ``_settle`` awaits it.

        The log numbers entries in the order they are queued, so the query's entries
        keep the order of its steps.
        """
        task = asyncio.ensure_future(self._append(run, entry))
        # Retrieved here so a failure is never reported as unhandled; ``_settle`` raises it.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        run.pending.append(task)
        return task

    async def _settle(self, run: _Run) -> None:
        """Wait until every queued entry is durable. Raises ``QueryFailed`` if any is not:
        nothing from the query may then be released."""
        pending, run.pending = run.pending, []
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def _append(self, run: _Run, entry: Entry) -> int:
        """Append one entry of the query. Raises ``QueryFailed`` if the log cannot take
        it: nothing from the exchange may then be released."""
        started = time.perf_counter()
        try:
            index = await self._audit.append_async(entry)
        except AuditError as exc:
            raise QueryFailed(
                "the audit log could not record this query, so nothing was released; "
                f"try again shortly ({exc})"
            ) from None
        if self._metrics is not None:
            self._metrics.audit_appended(time.perf_counter() - started)
        run.entries.append(index)
        return index

    def _record_submission(self, run: _Run, decision: FamilyDecision) -> None:
        request = run.request
        base = self._submitted(run, decision.bundle_digest)
        private = self._claims(run, refused=not decision.allow)
        self._queue(
            run,
            Entry(
                kind=Kind.QUERY_SUBMITTED if decision.allow else Kind.REFUSAL,
                decision=Decision.ALLOW if decision.allow else Decision.DENY,
                reasons=tuple(r.code for r in decision.submit.reasons),
                private=private,
                **base,  # type: ignore[arg-type]
            ),
        )
        if request.break_glass is not None and decision.allow:
            self._queue(
                run,
                Entry(
                    kind=Kind.BREAK_GLASS,
                    decision=Decision.ALLOW,
                    reasons=(request.break_glass.reason_code,),
                    private={"break_glass_text": request.break_glass.text},
                    **base,  # type: ignore[arg-type]
                ),
            )

    async def _record_unregistered(self, run: _Run, policy_digest: str) -> None:
        """Log the refusal of a caller whose agency the registry does not hold.

        Nothing is asked, but the attempt names a person: it is filed under them, so
        their subject access report shows it. A log that cannot take the entry leaves the
        refusal a refusal (nothing is released either way).
        """
        entry = Entry(
            kind=Kind.REFUSAL,
            decision=Decision.DENY,
            reasons=("agency_not_registered",),
            private=self._claims(run, refused=True),
            **self._submitted(run, policy_digest),  # type: ignore[arg-type]
        )
        self._queue(run, entry)
        try:
            await self._settle(run)
        except QueryFailed as exc:
            _log.warning("refusal_not_audited", query_id=run.query_id, error=exc.detail)

    @staticmethod
    def _submitted(run: _Run, policy_digest: str) -> dict[str, object]:
        """What every entry of the query's submission records."""
        request, principal = run.request, run.principal
        return {
            "actor": principal.subject,
            "actor_agency": principal.agency,
            "purpose": request.purpose,
            "legal_basis": _basis(request),
            "subjects": tuple(run.subject_refs),
            "policy_digest": policy_digest,
            "query_id": run.query_id,
            "time": run.now,
        }

    @staticmethod
    def _claims(run: _Run, *, refused: bool) -> dict[str, str]:
        """The caseworker's own words, kept as the submission's private values."""
        request = run.request
        private = {"justification": request.justification}
        if request.case_reference:
            private["case_reference"] = request.case_reference
        if request.break_glass is not None and refused:
            # A refused emergency leaves no break_glass entry: its refusal keeps what the
            # caseworker claimed, for the IG officer.
            private["break_glass_reason_code"] = request.break_glass.reason_code
            private["break_glass_text"] = request.break_glass.text
        return private

    # -- match ----------------------------------------------------------------------------

    def _budget(self, run: _Run) -> float:
        remaining = self._settings.deadline_seconds - (time.monotonic() - run.started)
        return max(0.0, min(self._settings.agency_timeout_seconds, remaining))

    async def _match_all(
        self, run: _Run, connectors: Sequence[ConnectorInfo]
    ) -> dict[str, MatchResponse]:
        request = run.request
        subject = Subject(
            given_name=request.subject.given_name,
            family_name=request.subject.family_name,
            date_of_birth=request.subject.date_of_birth,
            sex=request.subject.sex,
            postcode=request.subject.postcode,
            identifiers=request.subject.identifier_values(),
        )
        message = MatchRequest(
            query_id=run.query_id,
            requester_agency=run.principal.agency,
            purpose=request.purpose,
            subject=subject,
            include_household=request.include_household,
        )

        async def one(connector: ConnectorInfo) -> tuple[ConnectorInfo, CallOutcome[MatchResponse]]:
            endpoint = ConnectorEndpoint(connector.agency_id, connector.base_url)
            return connector, await self._client.match(endpoint, message, self._budget(run))

        results = await asyncio.gather(*(one(c) for c in connectors))
        matched: dict[str, MatchResponse] = {}
        for connector, outcome in results:
            status, detail, reasons = self._match_status(outcome)
            if self._metrics is not None:
                self._metrics.exchange(connector.agency_id, "match", status, outcome.elapsed)
            run.statuses[connector.agency_id] = AgencyStatusView(
                agency_id=connector.agency_id,
                agency_name=connector.agency_name,
                status=status,
                detail=detail,
                elapsed_ms=round(outcome.elapsed * 1000, 1),
                reasons=reasons,
            )
            if outcome.message is not None:
                if outcome.message.broker_checkpoint_size is not None:
                    run.checkpoint_sizes[connector.agency_id] = (
                        outcome.message.broker_checkpoint_size
                    )
                if outcome.message.status is MatchStatus.MATCHED:
                    matched[connector.agency_id] = outcome.message
            self._queue(
                run, self._exchange_entry(run, Kind.MATCH, connector, outcome, status=status)
            )
        return matched

    def _match_status(
        self, outcome: CallOutcome[MatchResponse]
    ) -> tuple[str, str, list[ReasonView]]:
        if outcome.status is CallStatus.TIMEOUT:
            return "timeout", outcome.detail, []
        if outcome.message is None:
            return "error", outcome.detail, []
        answer = outcome.message
        if answer.status is MatchStatus.REFUSED:
            refusal = answer.refusal
            reasons = [ReasonView(code=refusal.code, text=refusal.reason)] if refusal else []
            return "refused", "the agency's own policy refused the request", reasons
        if answer.status is MatchStatus.NO_RECORD or not answer.candidates:
            return "no_record", "", []
        sure = [c for c in answer.candidates if c.score >= self._settings.accept_match_score]
        if len(sure) > 1:
            return "ambiguous", _AMBIGUOUS.format(count=len(sure)), []
        if not sure:
            best = max(c.score for c in answer.candidates)
            return "ambiguous", _UNSURE.format(best=best), []
        return "ok", "", []

    def _link_records(self, matches: dict[str, MatchResponse]) -> list[LinkRecord]:
        records: list[LinkRecord] = []
        for agency, answer in sorted(matches.items()):
            accepted = [
                c for c in answer.candidates if c.score >= self._settings.accept_match_score
            ]
            if len(accepted) != 1:
                continue  # nothing certain, or ambiguous: do not guess who the subject is
            best = accepted[0]
            records.append(
                LinkRecord(
                    agency,
                    best.ref,
                    best.tokens,
                    is_subject=True,
                    match_score=best.score,
                    consent_keys=_consent_keys(best.consent_refs),
                )
            )
            for member in best.household:
                records.append(
                    LinkRecord(
                        agency,
                        member.ref,
                        member.tokens,
                        relationship=member.relationship,
                        consent_keys=_consent_keys(member.consent_refs),
                    )
                )
        return records

    # -- fetch ----------------------------------------------------------------------------

    async def _fetch_all(
        self,
        run: _Run,
        connectors: dict[str, ConnectorInfo],
        decision: FamilyDecision,
        persons: dict[str, list[str]],
        between: _Between,
    ) -> dict[str, CallOutcome[FetchResponse]]:
        checkpoint, proofs = between.checkpoint, between.proofs

        async def one(agency: str) -> tuple[str, CallOutcome[FetchResponse]] | None:
            wanted = []
            for ref in persons[agency]:
                exchange = _exchange(decision, agency, ref)
                if (
                    exchange
                    and exchange.allow
                    and exchange.tier == "full"
                    and exchange.permitted_fields
                ):
                    wanted.append(FetchPerson(ref=ref, fields=list(exchange.permitted_fields)))
            if not wanted:
                return None
            message = FetchRequest(
                query_id=run.query_id,
                exchange_id=uuid.uuid4().hex,
                requester_agency=run.principal.agency,
                requester_role=run.principal.role,
                purpose=run.request.purpose,
                legal_basis=_basis(run.request),
                decision_digest=decision.bundle_digest,
                break_glass=run.request.break_glass is not None,
                persons=wanted,
                broker_checkpoint=checkpoint,
            )
            held = run.checkpoint_sizes.get(agency)
            if held in proofs:
                message = message.model_copy(
                    update={
                        "broker_consistency_proof": proofs[held],
                        "broker_consistency_from": held,
                    }
                )
            connector = connectors[agency]
            endpoint = ConnectorEndpoint(agency, connector.base_url)
            outcome = await self._client.fetch(endpoint, message, self._budget(run))
            return agency, _screened(outcome, decision, run)

        results = [r for r in await asyncio.gather(*(one(a) for a in sorted(persons))) if r]
        for agency, outcome in results:
            connector = connectors[agency]
            previous = run.statuses.get(agency)
            status = _fetch_status(outcome)
            if self._metrics is not None:
                self._metrics.exchange(agency, "fetch", status, outcome.elapsed)
            run.statuses[agency] = AgencyStatusView(
                agency_id=agency,
                agency_name=connector.agency_name,
                status=status,
                detail=outcome.detail,
                elapsed_ms=round(
                    outcome.elapsed * 1000 + (previous.elapsed_ms or 0 if previous else 0), 1
                ),
                reasons=_refusal_reasons(outcome),
            )
            self._queue(
                run,
                self._exchange_entry(
                    run, Kind.FETCH, connector, outcome, status=status, decision=decision
                ),
            )
        for agency in persons:
            if agency not in dict(results) and run.statuses[agency].status == "ok":
                current = run.statuses[agency]
                run.statuses[agency] = current.model_copy(
                    update={"status": "withheld", "detail": "policy permits no facts from here"}
                )
        return dict(results)

    def _checkpoint_for_fetch(self, run: _Run) -> tuple[str | None, dict[int, list[str]]]:
        """The newest signed checkpoint of the log, and a consistency proof to it from
        each size an agency said it holds (RFC 6962 section 2.1.2, hashes in base64).

        Both are optional in a fetch: if the log cannot be read now, its appends say so.
        """
        try:
            latest = self._audit.latest_stored_checkpoint()
        except AuditError:
            return None, {}
        if latest is None:
            return None, {}
        size, note = latest
        proofs: dict[int, list[str]] = {}
        for held in sorted(set(run.checkpoint_sizes.values())):
            if not 0 < held < size:
                continue
            try:
                proof = self._audit.consistency_proof(held, size)
            except AuditError:
                continue
            proofs[held] = [base64.b64encode(node).decode() for node in proof]
        return note, proofs

    def _exchange_entry(
        self,
        run: _Run,
        kind: Kind,
        connector: ConnectorInfo,
        outcome: CallOutcome[MatchResponse] | CallOutcome[FetchResponse],
        *,
        status: str,
        decision: FamilyDecision | None = None,
    ) -> Entry:
        released: tuple[str, ...] = ()
        agency = connector.agency_id
        subjects = list(run.subject_refs) if kind is Kind.MATCH else []
        if isinstance(outcome.message, MatchResponse):
            # Every record the agency disclosed, filed under the identifiers it holds.
            for record in _answered(outcome.message):
                held = [self._subjects.held_reference(r) for r in record.consent_refs]
                run.held[f"{agency}:{record.ref}"] = held
                subjects += held
        if isinstance(outcome.message, FetchResponse):
            released = tuple(sorted({f.field for p in outcome.message.persons for f in p.facts}))
            for person in outcome.message.persons:
                subjects.append(self._local_key(agency, person.ref))
                subjects += run.held.get(f"{agency}:{person.ref}", [])
        reasons = [status]
        if outcome.rejected is not None:
            reasons.append(f"answer_rejected:{outcome.rejected}")
        reasons += [flag for flag in run.flags if flag.startswith(f"{connector.agency_id}:")]
        return Entry(
            kind=kind,
            actor=run.principal.subject,
            actor_agency=run.principal.agency,
            counterparty_agency=connector.agency_id,
            purpose=run.request.purpose,
            legal_basis=_basis(run.request),
            decision=Decision.ALLOW
            if status == "ok"
            else Decision.DENY
            if status in ("refused", "withheld")
            else Decision.PARTIAL,
            reasons=tuple(reasons),
            fields_released=released,
            subjects=tuple(dict.fromkeys(subjects)),
            request_digest=outcome.request_digest,
            response_digest=outcome.response_digest,
            policy_digest=decision.bundle_digest if decision else None,
            query_id=run.query_id,
            time=self._clock(),
        )

    # -- release ----------------------------------------------------------------------------

    async def _release(
        self, run: _Run, view: ViewBuilder, *, released_fields: Sequence[str]
    ) -> FamilyView:
        release = self._queue(
            run,
            Entry(
                kind=Kind.RELEASE,
                actor=run.principal.subject,
                actor_agency=run.principal.agency,
                purpose=run.request.purpose,
                legal_basis=_basis(run.request),
                decision=Decision.DENY if view.refused else Decision.ALLOW,
                fields_released=tuple(sorted(set(released_fields))),
                subjects=tuple(run.subject_refs),
                policy_digest=view.policy_digest,
                query_id=run.query_id,
                time=self._clock(),
            ),
        )
        await self._settle(run)
        if self._metrics is not None:
            self._metrics.query_finished("refused" if view.refused else "answered")
        return await asyncio.to_thread(self._finish, run, view, release.result())

    def _finish(self, run: _Run, view: ViewBuilder, release_entry: int) -> FamilyView:
        """The answer with its receipt, kept in the caller's query history. Every entry
        of the answer is durable by now."""
        try:
            latest = self._audit.latest_signed_checkpoint()
        except AuditError as exc:
            # The answer goes out as the log says it did; its receipt then names no
            # checkpoint yet, and the proofs can be asked for later.
            _log.warning("no checkpoint for the receipt", query_id=run.query_id, error=str(exc))
            latest = None
        answer = view.build(
            entries=sorted(run.entries),
            release_entry=release_entry,
            checkpoint=latest[1] if latest else None,
            tree_size=latest[0].size if latest else None,
        )
        self._records.record_query(run.principal.subject, run.principal.agency, answer)
        return answer


@dataclass(frozen=True, slots=True)
class _Between:
    """What ``_between`` gathers for the fetch step."""

    linkage: Linkage
    query: FamilyQueryInput
    checkpoint: str | None
    proofs: dict[int, list[str]]


# Said of an agency none of whose records was taken for the subject: nothing is guessed.
_AMBIGUOUS = (
    "{count} of its records could be the subject, so none was taken: add the sex or an"
    " identifier (NHS number, unique pupil number) to tell them apart"
)
_UNSURE = (
    "none of its records is surely the subject (the best matches {best:.0%}), so none was"
    " taken: check the details, or add an identifier (NHS number, unique pupil number)"
)


def _answered(answer: MatchResponse) -> list[MatchCandidate | HouseholdMember]:
    """Every record a match answer names: its candidates and their households."""
    records: list[MatchCandidate | HouseholdMember] = []
    for candidate in answer.candidates:
        records.append(candidate)
        records.extend(candidate.household)
    return records


def _consent_keys(consent_refs: Sequence[str]) -> tuple[str, ...]:
    """The consent register's keys of the consent references an agency sent."""
    return tuple(consent_register_key(ref) for ref in consent_refs)


def _basis(request: FamilyQueryRequest) -> str:
    return (
        request.gateway
        if request.legal_basis == "public_task" and request.gateway
        else request.legal_basis
    )


def _exchange(decision: FamilyDecision, agency: str, ref: str) -> ExchangeDecision | None:
    try:
        return decision.exchange(agency, ref)
    except KeyError:
        return None


def _screened(
    outcome: CallOutcome[FetchResponse], decision: FamilyDecision, run: _Run
) -> CallOutcome[FetchResponse]:
    """Drop anything the decision did not permit, and flag the exchange if there was any."""
    answer = outcome.message
    if answer is None:
        return outcome
    if answer.decision_digest != decision.bundle_digest:
        run.flags.append(f"{answer.agency_id}:decision_digest_mismatch")
    kept = []
    for person in answer.persons:
        exchange = _exchange(decision, answer.agency_id, person.ref)
        permitted = set(exchange.permitted_fields) if exchange and exchange.allow else set()
        facts = [fact for fact in person.facts if fact.field in permitted]
        if len(facts) != len(person.facts) or exchange is None:
            dropped = sorted({f.field for f in person.facts if f.field not in permitted})
            run.flags.append(f"{answer.agency_id}:field_not_permitted_dropped:{','.join(dropped)}")
        if exchange is not None:
            kept.append(person.model_copy(update={"facts": facts}))
    screened = answer.model_copy(update={"persons": kept})
    return CallOutcome(
        outcome.agency_id,
        outcome.status,
        outcome.elapsed,
        screened,
        outcome.detail,
        outcome.request_digest,
        outcome.response_digest,
    )


def _fetch_status(outcome: CallOutcome[FetchResponse]) -> str:
    if outcome.status is CallStatus.TIMEOUT:
        return "timeout"
    if outcome.message is None:
        return "error"
    if outcome.message.status is FetchStatus.REFUSED:
        return "refused"
    return "ok"


def _refusal_reasons(outcome: CallOutcome[FetchResponse]) -> list[ReasonView]:
    answer = outcome.message
    if answer is None or answer.refusal is None:
        return []
    return [ReasonView(code=answer.refusal.code, text=answer.refusal.reason)]


class QueryFailed(BrokerError):
    code = "query-not-audited"
    title = "The query could not be recorded, so nothing was released"
    status = 503
