"""Readiness and metrics: /ready answers 503 once the database is gone; /metrics is text."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from audit.entry import Entry, Kind
from audit.errors import LogClosed, StoreError
from broker.identity.principal import Role
from policies.opa_standin import OpaStandin
from tests.broker.foundation_kit import IssuerServer, running_broker
from tests.broker.oversight_kit import desk
from tests.faults.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio
READY_TIMEOUT = 5.0


@pytest.fixture
def doomed_database(postgres_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A PostgreSQL database of this test's own, and an admin engine that can drop it."""
    name = f"junction_ready_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, admin
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


async def test_ready_turns_503_when_the_database_is_gone(
    tmp_path: Path, dev_issuer: IssuerServer, doomed_database: tuple[str, sa.Engine]
) -> None:
    url, admin = doomed_database
    async with desk(tmp_path, dev_issuer, database_url=url) as broker:
        ready = await broker.client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"

        name = make_url(url).database
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))

        gone = await broker.client.get("/ready")
        assert gone.status_code == 503
        assert gone.headers["content-type"].startswith("application/problem+json")
        problem = gone.json()
        assert problem["type"].endswith("not-ready")
        assert problem["checks"]["database"].startswith("failed")
        assert problem["checks"]["audit_log"].startswith("failed")
        assert problem["checks"]["policy"].startswith("ok")
        assert "database" in problem["detail"]
        health = await broker.client.get("/health")
        assert health.status_code == 200, "liveness does not depend on the database"


async def test_ready_answers_503_in_time_when_the_database_stops_answering(
    tmp_path: Path, dev_issuer: IssuerServer, doomed_database: tuple[str, sa.Engine]
) -> None:
    url, _ = doomed_database
    parsed = make_url(url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    with proxy.running():
        proxied = parsed.set(host="127.0.0.1", port=proxy.port)
        database_url = proxied.render_as_string(hide_password=False)
        async with desk(tmp_path, dev_issuer, database_url=database_url) as broker:
            assert (await broker.client.get("/ready")).status_code == 200
            proxy.freeze()
            # A load balancer's probe gives up after a few seconds; this one is let through
            # again later, so that a broker that waits on the database does answer.
            thaw = threading.Timer(READY_TIMEOUT + 3, proxy.restore)
            thaw.start()
            try:
                started = time.monotonic()
                stuck = await broker.client.get("/ready")
                took = time.monotonic() - started
            finally:
                thaw.cancel()
                proxy.restore()
            assert took < READY_TIMEOUT + 2, f"/ready answered after {took:.1f} s"
            assert stuck.status_code == 503, stuck.text
            checks = stuck.json()["checks"]
            assert checks["database"] == f"failed: no answer in {READY_TIMEOUT:g} s"
            assert checks["audit_log"] == f"failed: no answer in {READY_TIMEOUT:g} s"
            assert checks["policy"].startswith("ok")
            assert "database, audit_log unavailable" in stuck.json()["detail"]
            # Back once the database answers again, without a restart.
            deadline = time.monotonic() + 15
            while (ready := await broker.client.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                await anyio.sleep(0.2)


async def test_metrics_are_prometheus_text_without_sign_in(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with desk(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        text = response.text
        for name in (
            "junction_family_queries_total",
            "junction_exchange_seconds",
            "junction_exchanges_total",
            "junction_policy_decision_seconds",
            "junction_audit_append_seconds",
        ):
            assert f"# HELP {name} " in text
        assert "python_gc" not in text, "a registry of its own, not the global one"


async def test_a_json_body_sent_without_a_media_type_is_told_to_say_application_json(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with desk(tmp_path, dev_issuer) as broker:
        body = b'{"identifiers": [{"kind": "nhs_number", "value": "9434765919"}]}'
        headers = broker.as_(Role.CASEWORKER)
        bare = await broker.client.post("/v1/consents/search", content=body, headers=headers)
        assert bare.status_code == 415, bare.text
        assert bare.headers["content-type"].startswith("application/problem+json")
        assert bare.json()["type"].endswith("unsupported-media-type")
        assert "Content-Type" in bare.json()["detail"]

        headers = {**headers, "content-type": "application/json"}
        said = await broker.client.post("/v1/consents/search", content=body, headers=headers)
        assert said.status_code == 200, said.text
        # A POST without a body needs no media type.
        empty = await broker.client.post(
            "/v1/agencies/police/connector/refresh", headers=broker.as_(Role.ADMIN)
        )
        assert empty.status_code != 415


async def test_a_method_a_resource_lacks_is_told_every_method_it_has_and_head_answers_as_get(
    tmp_path: Path, dev_issuer: IssuerServer
) -> None:
    async with desk(tmp_path, dev_issuer) as broker:
        admin = broker.as_(Role.ADMIN)
        for path, allowed in (
            ("/v1/agencies", {"GET", "HEAD", "POST"}),
            ("/v1/agencies/police", {"GET", "HEAD", "PUT"}),
            ("/health", {"GET", "HEAD"}),
        ):
            response = await broker.client.delete(path, headers=admin)
            assert response.status_code == 405, path
            assert response.headers["content-type"].startswith("application/problem+json")
            assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, path

        for path in ("/health", "/ready"):
            got = await broker.client.get(path)
            head = await broker.client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"]
        refused = await broker.client.head("/v1/agencies")
        assert refused.status_code == 401, "HEAD is as guarded as GET"


async def test_ready_names_the_policy_engine_when_the_opa_server_is_gone_or_forgot_the_bundle(
    tmp_path: Path, dev_issuer: IssuerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = OpaStandin().__enter__()
    try:
        monkeypatch.setenv("JUNCTION_POLICY_ENGINE", "opa")
        monkeypatch.setenv("JUNCTION_POLICY_OPA_URL", server.url)
        async with running_broker(tmp_path, dev_issuer) as broker:
            assert (await broker.client.get("/ready")).status_code == 200
            # An OPA server restarted since start-up holds none of what was pushed to it.
            async with httpx.AsyncClient(base_url=server.url) as opa:
                held = (await opa.get("/v1/policies")).json()["result"]
                (await opa.delete(f"/v1/policies/{held[0]['id']}")).raise_for_status()
            forgot = await broker.client.get("/ready")
            assert forgot.status_code == 503, forgot.text
            assert forgot.json()["checks"]["policy"] == "failed: EngineUnavailable"
            assert forgot.json()["checks"]["database"] == "ok"
            reloaded = await broker.client.post(
                "/v1/policy/reload",
                json={"reason": "OPA restarted"},
                headers=broker.as_(Role.ADMIN),
            )
            assert reloaded.status_code == 200, reloaded.text
            assert (await broker.client.get("/ready")).status_code == 200
            server.__exit__(None, None, None)
            gone = await broker.client.get("/ready")
            assert gone.status_code == 503, gone.text
            assert gone.json()["checks"]["policy"] == "failed: EngineUnavailable"
    finally:
        server.__exit__(None, None, None)


async def test_ready_turns_503_when_the_audit_writer_has_stopped(
    tmp_path: Path, dev_issuer: IssuerServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_broker(tmp_path, dev_issuer) as broker:
        assert (await broker.client.get("/ready")).status_code == 200

        def broken(*_: object) -> int:
            raise RuntimeError("a fault no one foresaw")

        monkeypatch.setattr(broker.audit.store, "append_batch", broken)
        with pytest.raises(StoreError, match="the audit writer stopped: a fault no one foresaw"):
            broker.audit.append(Entry(kind=Kind.FETCH, actor="u-1"))
        stopped = await broker.client.get("/ready")
        assert stopped.status_code == 503, stopped.text
        assert stopped.json()["checks"]["audit_log"] == "failed: the log's writer has stopped"
        # Every later append says why, not that someone closed the log.
        with pytest.raises(LogClosed, match="the audit writer stopped: a fault no one foresaw"):
            broker.audit.append(Entry(kind=Kind.FETCH, actor="u-1"))
