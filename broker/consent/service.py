"""The consent register: record, change and read consent for a person, purpose and scope.

A person is named only by keyed subject references of their identifiers, never by the
identifiers themselves. States are appended, never overwritten, so the whole history
stays; ``given`` reads as ``expired`` once ``expires_at`` has passed (nobody records
that, so it is not an audit entry). Every recorded change is one ``consent_change``
audit entry carrying the subject references, with free text only as private values.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from audit.entry import Kind
from audit.log import AuditLog
from broker._audit import record_change, record_read
from broker.consent import repository as repo
from broker.consent.models import ConsentIdempotencyRow, ConsentRow, ConsentStateRow
from broker.consent.schemas import (
    ConsentIn,
    ConsentOut,
    ConsentSearch,
    ConsentTransition,
    Identifier,
    State,
    StateOut,
)
from broker.consent.vocabulary import VocabularySource
from broker.db import Database
from broker.errors import Conflict, InvalidChange, NotFound
from broker.identity.principal import Principal, agency_not_registered
from broker.subjects import CONSENT_KEY_PREFIX, SubjectKeys
from policies.model import ConsentRecord

__all__ = ["TRANSITIONS", "ConsentService"]

# Which recorded states may follow which. Withdrawn and expired are final for a record:
# a person who consents again gets a new record, so the old one's history stays whole.
TRANSITIONS: dict[str, frozenset[str]] = {
    "not_sought": frozenset({"given", "refused"}),
    "refused": frozenset({"given"}),
    "given": frozenset({"withdrawn"}),
    "withdrawn": frozenset(),
    "expired": frozenset(),
}

_STILL_RECORDING = (
    "a consent statement sent with this Idempotency-Key is still being recorded; retry shortly"
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _effective(
    consent: ConsentRow, rows: Sequence[ConsentStateRow], at: datetime
) -> tuple[State, datetime] | None:
    """The state at ``at`` and since when; ``None`` if nothing was recorded by then."""
    recorded = [row for row in rows if row.at <= at]
    if not recorded:
        return None
    last = recorded[-1]
    expires = consent.expires_at
    if last.state == "given" and expires is not None and expires <= at:
        return "expired", expires
    return last.state, last.at  # type: ignore[return-value]


class ConsentService:
    """Reads and changes the consent register. Thread-safe; database calls block."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        subject_keys: SubjectKeys,
        *,
        vocabulary: VocabularySource,
        clock: Callable[[], datetime] = _utc_now,
        key_lifetime: timedelta = timedelta(days=1),
    ) -> None:
        """``vocabulary`` says, at each change, which purposes, agencies and fields exist;
        ``key_lifetime`` how long ``record_once`` remembers an idempotency key."""
        self._db = db
        self._key_lifetime = key_lifetime
        self._vocabulary = vocabulary
        self._audit = audit
        self._keys = subject_keys
        self._clock = clock

    def person_keys(self, identifiers: Sequence[Identifier]) -> list[str]:
        """The subject references of ``identifiers``. Raises ``InvalidChange``."""
        return sorted({self._keys.reference(i.kind, i.value) for i in identifiers})

    def register_keys(self, identifiers: Sequence[Identifier]) -> list[str]:
        """Every key a consent about ``identifiers`` is filed and found under: their
        subject references and their consent references, which the agencies' connectors
        send for the records they match. Raises ``InvalidChange``."""
        pairs = [(i.kind, i.value) for i in identifiers]
        return self.person_keys(identifiers) + self._keys.consent_keys(pairs)

    # -- changes --------------------------------------------------------------------

    def record(self, actor: Principal, consent: ConsentIn) -> ConsentOut:
        """Record a consent statement (given, refused or not sought).

        Raises ``Forbidden`` if the actor's agency is not registered; ``InvalidChange``
        for an identifier that is not well formed, a purpose, agency or field that does
        not exist (a local_ref's agency included), or an expiry in the past (with the
        member concerned as ``location``); ``StoreUnavailable`` if it cannot be logged
        or stored.
        """
        now = self._clock()
        vocabulary = self._vocabulary()
        if actor.agency not in vocabulary.agencies:
            raise agency_not_registered(actor)
        if consent.expires_at is not None and consent.expires_at <= now:
            raise InvalidChange(
                "expires_at is in the past; give a future date or none", location="expires_at"
            )
        local_refs = [
            (place, i.value) for place, i in enumerate(consent.identifiers) if i.kind == "local_ref"
        ]
        vocabulary.check(consent.purpose, consent.scope, consent.restricted_fields, local_refs)
        keys = self.person_keys(consent.identifiers)
        filed = self.register_keys(consent.identifiers)
        consent_id = str(uuid.uuid4())
        scope = consent.scope
        self._log(
            actor,
            f"consent_{consent.state}",
            consent_id,
            consent.purpose,
            keys,
            change={
                "id": consent_id,
                "purpose": consent.purpose,
                "scope": scope,
                "state": consent.state,
                "given_by": consent.given_by,
                "channel": consent.channel,
                "expires_at": consent.expires_at.isoformat() if consent.expires_at else None,
                "restricted_fields": sorted(set(consent.restricted_fields)),
            },
            private={
                "label": consent.label,
                "evidence_reference": consent.evidence_reference,
                "note": consent.note,
            },
        )
        row = ConsentRow(
            id=consent_id,
            purpose=consent.purpose,
            scope_all=scope == "all",
            scope=[] if scope == "all" else list(scope),
            given_by=consent.given_by,
            channel=consent.channel,
            evidence_reference=consent.evidence_reference,
            label=consent.label or None,
            recorded_by=actor.subject,
            recorded_by_agency=actor.agency,
            recorded_at=now,
            expires_at=consent.expires_at,
            restricted_fields=sorted(set(consent.restricted_fields)),
        )
        state = ConsentStateRow(
            consent_id=consent_id,
            seq=1,
            state=consent.state,
            at=now,
            by=actor.subject,
            note=consent.note,
        )
        with self._db.session(write=True) as session:
            repo.add_consent(session, row, filed)
            session.flush()
            repo.add_state(session, state)
        return self._out(row, [state], now)

    def record_once(
        self, actor: Principal, consent: ConsentIn, key: str
    ) -> tuple[ConsentOut, bool]:
        """Record ``consent`` once for the caller's idempotency ``key``.

        The same statement sent again with the key, for a day, is answered with the
        consent recorded the first time (and ``True``: a replay); nothing more is
        recorded or logged. Raises as ``record`` (which frees the key for a retry), and
        ``Conflict`` if the key was used for another statement or its first statement is
        still being recorded.
        """
        scoped = hashlib.sha256(f"{actor.subject}\x00{key}".encode()).hexdigest()
        # The statement as the register would file it: the person by subject references.
        statement = consent.model_dump_json(exclude={"identifiers"})
        hashed = hashlib.sha256(
            "\x00".join([*self.person_keys(consent.identifiers), statement]).encode()
        ).hexdigest()
        now = self._clock()
        try:
            with self._db.session(write=True) as session:
                held = repo.idempotency_row(session, scoped, now)
                if held is None:
                    repo.claim_idempotency_key(
                        session,
                        ConsentIdempotencyRow(
                            key=scoped,
                            request_hash=hashed,
                            consent_id=None,
                            expires_at=now + self._key_lifetime,
                        ),
                    )
        except Conflict:
            # The same key claimed at the same moment, by a statement still being recorded.
            raise Conflict(_STILL_RECORDING) from None
        if held is not None:
            if held.request_hash != hashed:
                raise Conflict(
                    "this Idempotency-Key was used for a different consent statement; use a "
                    "new key for a new statement"
                )
            if held.consent_id is None:
                raise Conflict(_STILL_RECORDING)
            return self.get(held.consent_id), True
        try:
            recorded = self.record(actor, consent)
        except BaseException:
            with self._db.session(write=True) as session:
                repo.release_idempotency_key(session, scoped)
            raise
        with self._db.session(write=True) as session:
            row = repo.idempotency_row(session, scoped, now)
            if row is not None:
                row.consent_id = recorded.id
        return recorded, False

    def transition(
        self, actor: Principal, consent_id: str, change: ConsentTransition
    ) -> ConsentOut:
        """Move a consent to a new state (e.g. withdraw it); the old states stay.

        Raises ``Forbidden`` if the actor's agency is not registered; ``NotFound``,
        ``InvalidChange`` for a record past its expiry or a transition the state does
        not allow (naming those it does), ``Conflict`` if someone changed it at the same
        moment.
        """
        if actor.agency not in self._vocabulary().agencies:
            raise agency_not_registered(actor)
        now = self._clock()
        with self._db.session() as session:
            row = self._consent(session, consent_id)
            rows = repo.states(session, [consent_id])[consent_id]
            filed = repo.subjects(session, [consent_id])[consent_id]
        # The log files the change under the person's subject references only.
        keys = sorted(k for k in filed if not k.startswith(CONSENT_KEY_PREFIX))
        current = _effective(row, rows, now)
        state = current[0] if current is not None else "not_sought"
        if row.expires_at is not None and row.expires_at <= now:
            # Whatever it says, a record past its expiry takes no new answer: consent
            # given now would read as expired at once, and a refusal would outlive the
            # period the record was made for.
            expired_on = row.expires_at.isoformat().replace("+00:00", "Z")
            raise InvalidChange(
                f"this record expired on {expired_on}; record a new consent",
                current_state=state,
            )
        if change.state not in TRANSITIONS[state]:
            allowed = ", ".join(sorted(TRANSITIONS[state])) or "none; record a new consent"
            raise InvalidChange(
                f"a consent that is {state} cannot become {change.state}; allowed: {allowed}",
                current_state=state,
            )
        self._log(
            actor,
            f"consent_{change.state}",
            consent_id,
            row.purpose,
            keys,
            change={"id": consent_id, "from": state, "state": change.state, "seq": len(rows) + 1},
            private={"note": change.note},
        )
        new = ConsentStateRow(
            consent_id=consent_id,
            seq=len(rows) + 1,
            state=change.state,
            at=now,
            by=actor.subject,
            note=change.note,
        )
        with self._db.session(write=True) as session:
            if len(repo.states(session, [consent_id])[consent_id]) != len(rows):
                raise Conflict("the consent changed while this change was made; read it again")
            repo.add_state(session, new)
        return self._out(row, [*rows, new], now)

    def _log(
        self,
        actor: Principal,
        action: str,
        consent_id: str,
        purpose: str,
        keys: Sequence[str],
        *,
        change: dict[str, Any],
        private: dict[str, str | None],
    ) -> None:
        record_change(
            self._audit,
            Kind.CONSENT_CHANGE,
            actor,
            action=action,
            change={**change, "subjects": list(keys)},
            purpose=purpose,
            subjects=tuple(keys),
            private={
                "consent_id": consent_id,
                **{name: value for name, value in private.items() if value},
            },
        )

    # -- reading --------------------------------------------------------------------

    def get(self, consent_id: str) -> ConsentOut:
        """One consent with its full history. Raises ``NotFound``."""
        with self._db.session() as session:
            row = self._consent(session, consent_id)
            rows = repo.states(session, [consent_id])[consent_id]
        return self._out(row, rows, self._clock())

    def search(self, actor: Principal, query: ConsentSearch) -> list[ConsentOut]:
        """Every consent recorded for the person the identifiers name, oldest first.

        The look-up is logged (``consent_lookup``, filed under the person, with the
        purpose asked about) once the answer is ready and before it is given, whether or
        not anything was found. Raises ``InvalidChange`` for a malformed identifier,
        ``StoreUnavailable`` if the register cannot be read or the log cannot record
        the look-up.
        """
        keys = self.person_keys(query.identifiers)
        now = self._clock()
        with self._db.session() as session:
            rows = repo.find(session, keys, purpose=query.purpose)
            states = repo.states(session, [r.id for r in rows])
        found = [self._out(row, states[row.id], now) for row in rows]
        record_read(
            self._audit,
            Kind.CONSENT_LOOKUP,
            actor,
            action="consent_search",
            subjects=keys,
            request=query.model_dump(mode="json", exclude={"identifiers"}),
            purpose=query.purpose,
        )
        return found

    def restrictions_for(
        self, person_keys: Collection[str], purpose: str, at: datetime
    ) -> dict[str, set[str]]:
        """Fields each person key asked not to share for ``purpose``, as of ``at``.

        A restriction is the person's own wish: it holds whatever the consent's state
        (a withdrawal does not lift it) until the statement expires. Raises
        ``StoreUnavailable``.
        """
        with self._db.read() as connection:
            rows = repo.restriction_rows_for(connection, person_keys, purpose, at)
        out: dict[str, set[str]] = {}
        for row in rows:
            if row.expires_at is not None and row.expires_at <= at:
                continue
            out.setdefault(row.person_key, set()).update(row.restricted_fields)
        return out

    def consents_for(
        self, person_keys: Collection[str], purpose: str, at: datetime
    ) -> dict[str, list[ConsentRecord]]:
        """The consent state, per person key and agency, for ``purpose`` at ``at``.

        For each person key and each agency in scope (``all`` means every registered
        agency) the latest statement the person made wins: a consent given after an
        earlier withdrawal counts, and the withdrawal is still in that record's history.
        ``not_sought`` is no statement of theirs, so it counts only where they made none.
        Keys with nothing recorded are absent. Raises ``StoreUnavailable``.
        """
        with self._db.read() as connection:
            rows = repo.state_rows_for(connection, person_keys, purpose, at)
            everyone = repo.agency_ids(connection) if any(r.scope_all for r in rows) else []
        # Rows come per (person key, consent) in recorded order: the last one is the state.
        last: dict[tuple[str, str], Any] = {}
        for row in rows:
            last[(row.person_key, row.id)] = row
        latest: dict[tuple[str, str], tuple[tuple[bool, datetime], ConsentRecord]] = {}
        for (key, _), row in last.items():
            state, since = row.state, row.at
            if state == "given" and row.expires_at is not None and row.expires_at <= at:
                state, since = "expired", row.expires_at
            rank = (state != "not_sought", since)
            for agency in everyone if row.scope_all else row.scope:
                held = latest.get((key, agency))
                if held is None or held[0] <= rank:
                    record = ConsentRecord(
                        purpose=purpose, agency_id=agency, state=state, expires_at=row.expires_at
                    )
                    latest[(key, agency)] = (rank, record)
        out: dict[str, list[ConsentRecord]] = {}
        for (key, _), (_, record) in sorted(latest.items()):
            out.setdefault(key, []).append(record)
        return out

    @staticmethod
    def _consent(session: Session, consent_id: str) -> ConsentRow:
        row = repo.consent(session, consent_id)
        if row is None:
            raise NotFound(f"no consent {consent_id!r}; search by the person's identifiers")
        return row

    @staticmethod
    def _out(row: ConsentRow, rows: Sequence[ConsentStateRow], now: datetime) -> ConsentOut:
        history = [StateOut(state=r.state, at=r.at, by=r.by, note=r.note) for r in rows]
        effective = _effective(row, rows, now)
        state: State = effective[0] if effective is not None else "not_sought"
        if state == "expired" and row.expires_at is not None:
            history.append(
                StateOut(state="expired", at=row.expires_at, by="system", automatic=True)
            )
        return ConsentOut(
            id=row.id,
            label=row.label,
            purpose=row.purpose,
            scope="all" if row.scope_all else list(row.scope),
            given_by=row.given_by,
            channel=row.channel,
            evidence_reference=row.evidence_reference,
            recorded_by=row.recorded_by,
            recorded_by_agency=row.recorded_by_agency,
            recorded_at=row.recorded_at,
            expires_at=row.expires_at,
            state=state,
            history=history,
            restricted_fields=list(row.restricted_fields or []),
        )
