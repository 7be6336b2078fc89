"""Anomaly flags: each rule fires on entries crafted to show it, and not on normal work.

November, so Europe/London local time is UTC. 2026-11-16 is a Monday.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.entry import Decision, Kind
from broker.oversight.anomalies import Thresholds
from broker.oversight.service import OversightService
from broker.settings import BrokerSettings
from tests.broker.foundation_kit import IssuerServer
from tests.broker.oversight_kit import Desk, at, desk

pytestmark = pytest.mark.anyio

SINCE, UNTIL = "2026-11-16T00:00:00Z", "2026-11-21T00:00:00Z"
_ids = itertools.count()


@pytest.fixture
async def broker(tmp_path: Path, dev_issuer: IssuerServer) -> AsyncIterator[Desk]:
    async with desk(tmp_path, dev_issuer) as running:
        yield running


def _query(broker: Desk, actor: str, when: datetime, answers: tuple[str, ...] = ("ok",)) -> int:
    """One family query by ``actor``: submitted, then one match entry per agency."""
    query_id = f"q{next(_ids)}"
    index = broker.append(
        Kind.QUERY_SUBMITTED, actor=f"dev:council:{actor}", query_id=query_id, time=when
    )
    for n, status in enumerate(answers):
        broker.append(
            Kind.MATCH,
            actor=f"dev:council:{actor}",
            counterparty_agency=f"agency{n}",
            reasons=(status,),
            query_id=query_id,
            time=when + timedelta(seconds=1),
        )
    return index


def _workday(broker: Desk, actor: str, day: str, count: int) -> list[int]:
    start = at(f"{day} 09:00")
    return [_query(broker, actor, start + timedelta(minutes=10 * i)) for i in range(count)]


async def _flags(broker: Desk, **params: Any) -> list[dict[str, Any]]:
    response = await broker.client.get(
        "/v1/oversight/anomalies",
        params={"since": SINCE, "until": UNTIL, **params},
        headers=broker.officer(),
    )
    assert response.status_code == 200, response.text
    return list(response.json()["flags"])


HISTORY = ["2026-11-09", "2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"]


async def test_normal_work_raises_no_flag(broker: Desk) -> None:
    for day in [*HISTORY, "2026-11-16", "2026-11-17", "2026-11-18"]:
        _workday(broker, "steady", day, 6)
    assert await _flags(broker) == []


def _reads(kind: Kind, reason: str) -> Callable[[Desk, str, str, int], list[int]]:
    """Entries of ``count`` look-ups of different people by ``actor`` on ``day``, ten
    minutes apart, each of ``kind`` for ``reason``."""

    def read(broker: Desk, actor: str, day: str, count: int) -> list[int]:
        start = at(f"{day} 09:00")
        return [
            broker.append(
                kind,
                actor=f"dev:council:{actor}",
                purpose=None,
                legal_basis=None,
                reasons=(reason,),
                subjects=(broker.ref("local_ref", f"police:P-{i}"),),
                time=start + timedelta(minutes=10 * i),
            )
            for i in range(count)
        ]

    return read


@pytest.mark.parametrize(
    ("work", "rule", "noun"),
    [
        (_workday, "volume", "queries"),
        (
            _reads(Kind.AUDIT_ACCESS, "audit_search"),
            "officer_look_ups",
            "look-ups of people's audit records",
        ),
        (
            _reads(Kind.CONSENT_LOOKUP, "consent_search"),
            "consent_look_ups",
            "look-ups of people's consents",
        ),
    ],
    ids=["caseworker queries", "officer look-ups", "consent look-ups"],
)
async def test_volume_far_above_their_own_norm(
    broker: Desk, work: Callable[[Desk, str, str, int], list[int]], rule: str, noun: str
) -> None:
    for day in HISTORY:
        work(broker, "surge", day, 4)
        work(broker, "busy", day, 10)
    surge = work(broker, "surge", "2026-11-17", 25)
    work(broker, "busy", "2026-11-17", 25)  # 2.5x their norm: not flagged
    work(broker, "newcomer", "2026-11-16", 5)
    work(broker, "newcomer", "2026-11-17", 40)  # no history to compare with
    flags = await _flags(broker)
    assert [(f["rule"], f["actor"]) for f in flags] == [(rule, "dev:council:surge")]
    assert flags[0]["evidence"] == surge
    assert f"25 {noun} on 2026-11-17" in flags[0]["reason"]
    assert "median of 4" in flags[0]["reason"]


async def test_out_of_hours_access(broker: Desk) -> None:
    late = [
        _query(broker, "owl", at("2026-11-17 06:30")),
        _query(broker, "owl", at("2026-11-18 20:00")),
        _query(broker, "owl", at("2026-11-14 11:00")),  # Saturday, before the window
        _query(broker, "owl", at("2026-11-20 23:59")),
    ]
    _query(broker, "owl", at("2026-11-19 07:00"))
    _query(broker, "owl", at("2026-11-19 19:59"))
    weekend = _query(broker, "weekender", at("2026-11-21 10:00"))
    flags = await _flags(broker, until="2026-11-22T00:00:00Z")
    owl = next(f for f in flags if f["actor"] == "dev:council:owl")
    assert owl["rule"] == "out_of_hours"
    assert owl["evidence"] == [late[0], late[1], late[3]]
    assert "07:00-20:00 Europe/London" in owl["reason"]
    weekender = next(f for f in flags if f["actor"] == "dev:council:weekender")
    assert weekender["evidence"] == [weekend]


async def test_repeated_queries_with_no_match(broker: Desk) -> None:
    nothing = ("no_record", "no_record")
    fishing = [_query(broker, "fisher", at(f"2026-11-17 1{i}:00"), nothing) for i in range(3)]
    _query(broker, "unlucky", at("2026-11-17 10:00"), nothing)
    _query(broker, "unlucky", at("2026-11-17 11:00"), nothing)
    for i in range(3):  # one agency knew them each time
        _query(broker, "careful", at(f"2026-11-17 1{i}:00"), ("no_record", "ok"))
    flags = await _flags(broker)
    assert [(f["rule"], f["actor"]) for f in flags] == [("repeated_no_match", "dev:council:fisher")]
    assert flags[0]["evidence"] == fishing


async def test_frequent_break_glass(broker: Desk) -> None:
    def use(actor: str, when: str) -> int:
        return broker.append(
            Kind.BREAK_GLASS, actor=f"dev:council:{actor}", reasons=("risk",), time=at(when)
        )

    often = [use("often", f"2026-11-{d} 10:00") for d in (16, 18, 20)]
    for day in ("01", "10", "19"):
        use("rarely", f"2026-11-{day} 10:00")
    flags = await _flags(broker)
    assert [(f["rule"], f["actor"]) for f in flags] == [
        ("frequent_break_glass", "dev:council:often")
    ]
    assert flags[0]["evidence"] == often
    assert "within 7 days" in flags[0]["reason"]


async def test_the_window_defaults_to_the_week_before_the_clock(broker: Desk) -> None:
    recent = _query(broker, "owl", at("2026-11-20 22:00"))
    _query(broker, "owl", at("2026-11-01 22:00"))
    service = OversightService(
        audit=broker.audit,
        db=broker.foundation.db,
        subjects=broker.keys,
        thresholds=Thresholds(day_ends=21),
        clock=lambda: datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
    )
    report = service.anomalies(None, None)
    assert report.since == datetime(2026, 11, 14, 12, 0, tzinfo=UTC)
    assert [f.evidence for f in report.flags] == [[recent]]
    assert report.thresholds["day_ends"] == 21
    backwards = await broker.client.get(
        "/v1/oversight/anomalies",
        params={"since": UNTIL, "until": SINCE},
        headers=broker.officer(),
    )
    assert backwards.status_code == 422


async def test_a_refused_query_counts_and_a_refused_page_does_not(broker: Desk) -> None:
    refused = broker.append(
        Kind.REFUSAL,
        actor="dev:council:owl",
        decision=Decision.DENY,
        reasons=("purpose_not_allowed_for_role",),
        query_id="q-refused",
        time=at("2026-11-17 05:00"),
    )
    # A signed-in caseworker opening an administrator's page at night: audited as a
    # refusal, but it is not a query, so no "queries out of hours" flag may name it.
    broker.append(
        Kind.REFUSAL,
        actor="dev:council:lark",
        decision=Decision.DENY,
        reasons=("role_not_allowed", "role:caseworker", "GET /v1/agencies"),
        time=at("2026-11-17 05:00"),
    )
    flags = await _flags(broker)
    assert [(f["rule"], f["actor"], f["evidence"]) for f in flags] == [
        ("out_of_hours", "dev:council:owl", [refused])
    ]


async def test_working_hours_and_time_zone_come_from_the_settings(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with desk(
        tmp_path, dev_issuer, anomaly_day_starts=9, anomaly_day_ends=17, anomaly_timezone="UTC"
    ) as broker:
        early = _query(broker, "lark", at("2026-11-17 08:30"))
        _query(broker, "lark", at("2026-11-17 09:00"))
        late = _query(broker, "lark", at("2026-11-18 17:00"))
        flags = await _flags(broker)
        response = await broker.client.get(
            "/v1/oversight/anomalies",
            params={"since": SINCE, "until": UNTIL},
            headers=broker.officer(),
        )
    assert [(f["rule"], f["evidence"]) for f in flags] == [("out_of_hours", [early, late])]
    assert "09:00-17:00 UTC" in flags[0]["reason"]
    thresholds = response.json()["thresholds"]
    assert (thresholds["day_starts"], thresholds["day_ends"]) == (9, 17)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"anomaly_timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"anomaly_day_starts": 20, "anomaly_day_ends": 8}, "earlier than anomaly_day_ends"),
    ],
)
def test_impossible_anomaly_settings_are_refused(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BrokerSettings(**setting)
