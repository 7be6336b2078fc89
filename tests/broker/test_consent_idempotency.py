"""A consent statement sent again with its Idempotency-Key is recorded once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from broker.identity import Role
from tests.broker.foundation_kit import IssuerServer, running_broker
from tests.broker.test_consent import _agencies, consent

pytestmark = pytest.mark.anyio


async def test_a_statement_sent_again_with_its_key_is_answered_with_the_first_consent(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
) -> None:
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        await _agencies(broker)
        caseworker = broker.as_(Role.CASEWORKER, agency="council")
        keyed = {**caseworker, "Idempotency-Key": "consent-form-1"}
        first = await broker.client.post("/v1/consents", json=consent(), headers=keyed)
        again = await broker.client.post("/v1/consents", json=consent(), headers=keyed)
        other = await broker.client.post(
            "/v1/consents", json=consent(label="Someone else"), headers=keyed
        )
        # Another caseworker's key of the same name is theirs alone.
        token = broker.issuer.mint(role=Role.CASEWORKER, agency="council", name="Ann Lee")
        colleague = {"Authorization": f"Bearer {token}", "Idempotency-Key": "consent-form-1"}
        theirs = await broker.client.post("/v1/consents", json=consent(), headers=colleague)
        at_once = await asyncio.gather(
            *[
                broker.client.post(
                    "/v1/consents", json=consent(), headers={**caseworker, "Idempotency-Key": "k2"}
                )
                for _ in range(2)
            ]
        )
        recorded = broker.entries("consent_change")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 409
    assert "used for a different consent statement" in other.json()["detail"]
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]
    # The second of two sent at once waits for nothing: it is told to retry, or it
    # finds the first already recorded.
    assert len({r.json()["id"] for r in at_once if r.status_code == 201}) == 1
    for response in at_once:
        assert response.status_code in (201, 409), response.text
        if response.status_code == 409:
            assert "still being recorded" in response.json()["detail"]
    # One statement for the first key, one for the colleague's, one for the second key.
    assert len(recorded) == 3
