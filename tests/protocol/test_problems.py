"""Errors over HTTP: every bad request gets an RFC 9457 problem, never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from broker.app import create_app
from broker.errors import Forbidden
from broker.settings import BrokerSettings
from connectors.protocol.errors import Expired, ProtocolError
from connectors.protocol.problems import BodyLimitMiddleware, install_problem_handlers

pytestmark = pytest.mark.anyio


class Order(BaseModel):
    name: str
    count: int


def _app(max_bytes: int = 2048) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    install_problem_handlers(app, (ProtocolError, Forbidden))

    @app.post("/v1/orders")
    async def create(order: Order) -> Order:
        return order

    @app.get("/v1/expired")
    async def expired() -> None:
        raise Expired("expired at 1700000000; send a fresh envelope")

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug with secrets in it")

    return app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def _assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:junction:problem:{code}"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return dict(body)


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/orders", content=b'{"name": "x",', headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400, "malformed-json")


async def test_a_wrongly_typed_member_is_a_422_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json={"name": "x", "count": "many"})
    body = _assert_problem(response, 422, "invalid-request")
    assert body["errors"] == [
        {
            "location": "count",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        }
    ]


async def test_submitted_values_are_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json={"name": "Jane Doe 1990-01-01", "count": []})
    assert "Jane Doe" not in response.text


async def test_a_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/orders", json={"name": "x" * 5000, "count": 1})
    _assert_problem(response, 413, "body-too-large")


async def test_a_streamed_body_over_the_limit_is_a_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = await client.post(
        "/v1/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413, "body-too-large")


async def test_a_non_json_body_is_a_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/orders",
        content=b"name=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "body",
    [b"", b'{"name": "\xff\xfe"}'],
    ids=["empty", "invalid-utf-8"],
)
async def test_a_body_that_is_no_json_document_is_malformed_json(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/v1/orders", content=body, headers={"content-type": "application/json"}
    )
    _assert_problem(response, 400, "malformed-json")


async def test_deeply_nested_json_is_a_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    app = _app(max_bytes=1_000_000)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as deep:
        response = await deep.post(
            "/v1/orders",
            content=b"[" * 200_000 + b"]" * 200_000,
            headers={"content-type": "application/json"},
        )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_domain_error_keeps_its_code_and_status(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/v1/expired"), 401, "envelope-expired")
    assert body["detail"] == "expired at 1700000000; send a fresh envelope"
    assert body["instance"] == "/v1/expired"


async def test_an_unknown_path_is_a_404_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.get("/v1/nowhere"), 404, "not-found")


async def test_a_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.delete("/v1/orders"), 405, "method-not-allowed")


async def test_a_bug_is_a_500_problem_without_a_traceback(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/boom")
    body = _assert_problem(response, 500, "internal-error")
    assert "reference" in str(body["detail"])
    assert "secrets" not in response.text
    assert "Traceback" not in response.text


async def test_the_broker_answers_health_and_renders_problems() -> None:
    app = create_app(BrokerSettings(max_body_bytes=4096))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        health = await c.get("/health")
        missing = await c.get("/v1/no-such-resource")
    assert health.json()["status"] == "ok"
    assert json.loads(missing.text)["type"] == "urn:junction:problem:not-found"
