"""Anomaly flags: patterns in the audit log an IG officer should look at.

Each rule reads only the audit entries, so a flag can always be checked against the
log itself: it names the caseworker, the entries that show the pattern, and why it
fired. The thresholds are documented in ``Thresholds`` and returned with every report.

- ``volume``: on one local day a caseworker ran more than ``volume_factor`` times the
  median of their own active days in the ``volume_history_days`` before it, and more
  than ``volume_minimum`` queries (with at least ``volume_min_history_days`` active
  days of history, so a newcomer's first busy day is not flagged).
- ``out_of_hours``: queries before ``day_starts`` or from ``day_ends`` local time, or
  at weekends.
- ``repeated_no_match``: ``no_match_queries`` or more queries on one local day where
  every agency asked answered ``no_record`` (someone trying names until one hits).
- ``frequent_break_glass``: ``break_glass_count`` or more break-glass uses within
  ``break_glass_days`` days.
- ``officer_look_ups``: the ``volume`` rule, with the same thresholds, over an IG
  officer's look-ups of people's audit records (``audit_access`` entries: searches
  naming a person, subject access reports, entries read one by one), so the officers'
  own reads are watched too.
- ``consent_look_ups``: the same over anyone's searches of the consent register for
  people (``consent_lookup`` entries).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from audit.entry import Kind, StoredEntry
from broker.oversight.schemas import AnomalyFlag

__all__ = ["Thresholds", "detect"]

_QUERY_KINDS = frozenset({Kind.QUERY_SUBMITTED.value, Kind.REFUSAL.value})


@dataclass(frozen=True, slots=True)
class _Counted:
    """What the volume rule counts: the rule's name, and what its reason calls them."""

    rule: str
    noun: str


_QUERIES = _Counted("volume", "queries")
_LOOK_UPS = _Counted("officer_look_ups", "look-ups of people's audit records")
_CONSENT_LOOK_UPS = _Counted("consent_look_ups", "look-ups of people's consents")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When each rule fires; see the module docstring."""

    volume_factor: float = 3.0
    volume_minimum: int = 20
    volume_history_days: int = 28
    volume_min_history_days: int = 5
    day_starts: int = 7
    day_ends: int = 20
    timezone: str = "Europe/London"
    no_match_queries: int = 3
    break_glass_count: int = 3
    break_glass_days: int = 7

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def detect(
    entries: Iterable[StoredEntry], *, since: datetime, until: datetime, thresholds: Thresholds
) -> list[AnomalyFlag]:
    """Every flag raised in ``[since, until)``.

    ``entries`` must hold the queries of the ``volume_history_days`` before ``since``,
    the break-glass uses of the ``break_glass_days`` before it, and the matches within.
    """
    zone = ZoneInfo(thresholds.timezone)
    ordered = sorted(entries, key=lambda e: e.index)
    # A refused query carries its query id; a refusal without one is a page or an
    # endpoint the caller's role does not open, which is no query.
    queries = [e for e in ordered if e.kind in _QUERY_KINDS and e.fields.get("query_id")]
    look_ups = [e for e in ordered if e.kind == Kind.AUDIT_ACCESS.value]
    consents = [e for e in ordered if e.kind == Kind.CONSENT_LOOKUP.value]
    flags = [
        *_volume(queries, since, until, thresholds, zone),
        *_volume(look_ups, since, until, thresholds, zone, counted=_LOOK_UPS),
        *_volume(consents, since, until, thresholds, zone, counted=_CONSENT_LOOK_UPS),
        *_out_of_hours(queries, since, until, thresholds, zone),
        *_no_match(ordered, queries, (since, until), thresholds, zone),
        *_break_glass(ordered, since, until, thresholds),
    ]
    return sorted(flags, key=lambda f: (f.actor, f.rule, f.evidence[0]))


def _actor_agency(entry: StoredEntry) -> str | None:
    agency = entry.fields.get("actor_agency")
    return None if agency is None else str(agency)


def _by_actor(entries: Iterable[StoredEntry]) -> dict[str, list[StoredEntry]]:
    grouped: dict[str, list[StoredEntry]] = defaultdict(list)
    for entry in entries:
        grouped[str(entry.fields["actor"])].append(entry)
    return grouped


def _within(entry: StoredEntry, since: datetime, until: datetime) -> bool:
    return since <= entry.time < until


def _volume(
    queries: Sequence[StoredEntry],
    since: datetime,
    until: datetime,
    limits: Thresholds,
    zone: ZoneInfo,
    *,
    counted: _Counted = _QUERIES,
) -> list[AnomalyFlag]:
    flags = []
    for actor, mine in _by_actor(queries).items():
        days: dict[date, list[StoredEntry]] = defaultdict(list)
        for entry in mine:
            days[entry.time.astimezone(zone).date()].append(entry)
        for day, that_day in sorted(days.items()):
            if not any(_within(e, since, until) for e in that_day):
                continue
            first = day - timedelta(days=limits.volume_history_days)
            history = [len(v) for d, v in days.items() if first <= d < day]
            if len(history) < limits.volume_min_history_days:
                continue
            median = statistics.median(history)
            count = len(that_day)
            if count > limits.volume_factor * median and count > limits.volume_minimum:
                flags.append(
                    _flag(
                        counted.rule,
                        actor,
                        that_day,
                        (
                            f"{count} {counted.noun} on {day.isoformat()}, more than"
                            f" {limits.volume_factor:g}x their median of {median:g} over"
                            f" {len(history)} active days in the {limits.volume_history_days}"
                            f" days before, and more than {limits.volume_minimum}"
                        ),
                    )
                )
    return flags


def _flag(rule: str, actor: str, entries: Sequence[StoredEntry], reason: str) -> AnomalyFlag:
    """A flag on ``actor`` whose evidence is ``entries`` (oldest first)."""
    return AnomalyFlag(
        rule=rule,
        actor=actor,
        actor_agency=_actor_agency(entries[0]),
        evidence=[e.index for e in entries],
        reason=reason,
        window_start=entries[0].time,
        window_end=entries[-1].time,
    )


def _out_of_hours(
    queries: Sequence[StoredEntry],
    since: datetime,
    until: datetime,
    limits: Thresholds,
    zone: ZoneInfo,
) -> list[AnomalyFlag]:
    flags = []
    for actor, mine in _by_actor(e for e in queries if _within(e, since, until)).items():
        late = []
        for entry in mine:
            local = entry.time.astimezone(zone)
            weekend = local.weekday() >= 5
            if weekend or local.hour < limits.day_starts or local.hour >= limits.day_ends:
                late.append(entry)
        if late:
            flags.append(
                _flag(
                    "out_of_hours",
                    actor,
                    late,
                    (
                        f"{len(late)} quer{'y' if len(late) == 1 else 'ies'} outside"
                        f" {limits.day_starts:02d}:00-{limits.day_ends:02d}:00"
                        f" {limits.timezone} on weekdays, or at a weekend"
                    ),
                )
            )
    return flags


def _no_match(
    ordered: Sequence[StoredEntry],
    queries: Sequence[StoredEntry],
    window: tuple[datetime, datetime],
    limits: Thresholds,
    zone: ZoneInfo,
) -> list[AnomalyFlag]:
    since, until = window
    answers: dict[str, list[str]] = defaultdict(list)
    for entry in ordered:
        if entry.kind == Kind.MATCH.value and entry.fields.get("query_id"):
            reasons = entry.fields.get("reasons") or [""]
            answers[str(entry.fields["query_id"])].append(str(reasons[0]))
    empty = [
        q
        for q in queries
        if _within(q, since, until)
        and answers.get(str(q.fields.get("query_id")))
        and all(status == "no_record" for status in answers[str(q.fields["query_id"])])
    ]
    flags = []
    for actor, mine in _by_actor(empty).items():
        days: dict[date, list[StoredEntry]] = defaultdict(list)
        for entry in mine:
            days[entry.time.astimezone(zone).date()].append(entry)
        for day, that_day in sorted(days.items()):
            if len(that_day) >= limits.no_match_queries:
                flags.append(
                    _flag(
                        "repeated_no_match",
                        actor,
                        that_day,
                        (
                            f"{len(that_day)} queries on {day.isoformat()} where every agency"
                            f" asked answered no_record (threshold {limits.no_match_queries})"
                        ),
                    )
                )
    return flags


def _break_glass(
    ordered: Sequence[StoredEntry], since: datetime, until: datetime, limits: Thresholds
) -> list[AnomalyFlag]:
    uses = [e for e in ordered if e.kind == Kind.BREAK_GLASS.value and e.time < until]
    span = timedelta(days=limits.break_glass_days)
    flags = []
    for actor, mine in _by_actor(uses).items():
        mine.sort(key=lambda e: e.time)
        hit: dict[int, StoredEntry] = {}
        n = limits.break_glass_count
        for start in range(len(mine) - n + 1):
            window = mine[start : start + n]
            if window[-1].time - window[0].time <= span and window[-1].time >= since:
                hit.update((e.index, e) for e in window)
        if hit:
            evidence = sorted(hit.values(), key=lambda e: e.time)
            flags.append(
                _flag(
                    "frequent_break_glass",
                    actor,
                    evidence,
                    (
                        f"{len(evidence)} break-glass uses, at least {n} within"
                        f" {limits.break_glass_days} days"
                    ),
                )
            )
    return flags
