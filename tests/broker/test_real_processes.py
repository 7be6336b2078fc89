"""The broker and six connectors as real processes on real sockets, as the demo runs them."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.demo.launcher import DemoProcesses
from broker.demo.layout import DemoLayout, DemoPorts, prepare
from broker.foundation import open_dev_issuer
from broker.settings import BrokerSettings
from tests.broker.test_family_query import _query
from tests.broker.town_kit import known_to

pytestmark = pytest.mark.slow


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _consecutive_ports(count: int) -> int:
    """A run of ``count`` free ports (the demo gives its connectors consecutive ones)."""
    for start in _free_ports(20):
        if start + count < 65535 and all(_is_free(start + i) for i in range(count)):
            return start
    raise RuntimeError("no run of free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoLayout]:
    root: Path = tmp_path_factory.mktemp("processes")
    broker_port = _free_ports(1)[0]
    layout = prepare(root, 400, seed=7, ports=DemoPorts(broker_port, _consecutive_ports(6)))
    with DemoProcesses(layout, root / "logs") as processes:
        processes.start()
        yield layout


def _token(layout: DemoLayout) -> str:
    settings = BrokerSettings(data_dir=layout.broker_data, port=layout.ports.broker)
    return open_dev_issuer(settings).mint(
        role="caseworker", agency="council", name="Sam Caseworker", job_role="social_worker"
    )


def test_a_family_query_crosses_real_sockets(demo: DemoLayout) -> None:
    truth: dict[str, Any] = json.loads((demo.town / "truth.json").read_text())
    person = next(p for p in known_to(truth, 4) if p["role"] == "child")
    headers = {"Authorization": f"Bearer {_token(demo)}"}
    response = httpx.post(
        demo.broker_url() + "/v1/family-queries", json=_query(person), headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    view = response.json()
    answered = {a["agency_id"] for a in view["agencies"] if a["status"] == "ok"}
    assert len(answered) >= 3
    subject = next(m for m in view["members"] if m["is_subject"])
    assert len(subject["records"]) >= 3
    for agency in answered:
        metrics = httpx.get(f"http://127.0.0.1:{demo.connector_port(agency)}/metrics").text
        assert "fetch" in metrics


def test_unsigned_requests_to_a_connector_are_refused(demo: DemoLayout) -> None:
    response = httpx.post(
        demo.connector_url("police") + "/v1/match",
        content=b'{"header": {}, "body": {}, "signature": ""}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_broker_refuses_a_caller_without_a_token(demo: DemoLayout) -> None:
    response = httpx.post(demo.broker_url() + "/v1/family-queries", json={})
    assert response.status_code == 401
    assert response.json()["type"].startswith("urn:junction:problem:")
