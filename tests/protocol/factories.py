"""Factories for protocol messages and a signer/verifier pair with real keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from connectors.protocol import KeyPair, KeyRing, ReplayCache, Signer, Verifier
from connectors.protocol.messages import (
    FetchResponse,
    FetchStatus,
    PersonFacts,
    ReleasedFact,
)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Pair:
    signer: Signer
    verifier: Verifier
    clock: FakeClock
    key: KeyPair


def signer_and_verifier(sender: str = "police", audience: str = "broker") -> Pair:
    clock = FakeClock()
    key = KeyPair.generate()
    ring = KeyRing()
    ring.add(sender, key.public_key)
    signer = Signer(key, sender, lifetime_seconds=60, clock=clock)
    verifier = Verifier(ring, audience, replay_cache=ReplayCache(1000), clock=clock)
    return Pair(signer, verifier, clock, key)


def fetch_response(persons: int = 5, facts_per_person: int = 4) -> FetchResponse:
    """A fetch response of about 2 KB with the default sizes."""
    as_of = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
    return FetchResponse(
        query_id="q-7f3a9c2e51d84b7a",
        exchange_id="x-0c1e5a7b93d24f60",
        agency_id="police",
        decision_digest="sha256:" + "ab" * 32,
        status=FetchStatus.OK,
        persons=[
            PersonFacts(
                ref=f"ref-{index:08d}",
                facts=[
                    ReleasedFact(
                        field=f"police.measure_{field}",
                        value=round(0.05 + field / 7 + index / 11, 6),
                        as_of=as_of,
                    )
                    for field in range(facts_per_person)
                ],
            )
            for index in range(persons)
        ],
    )
