"""``junction connector serve`` and ``check`` as an operator runs them: real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.protocol.envelope import KeyRing, Verifier
from connectors.protocol.keys import load_public_key
from connectors.protocol.messages import Manifest, MatchRequest, MatchResponse, Subject
from tests.connectors.town_kit import AGENCIES, AgencySetup, configure_agency, make_town

JUNCTION = str(Path(sys.executable).with_name("junction"))


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("town")
    return out, make_town(out, people=200)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JUNCTION, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
        timeout=60,
        check=False,
    )


@pytest.fixture
def served(tmp_path: Path, town: tuple[Path, dict[str, Any]]) -> Iterator[tuple[AgencySetup, str]]:
    setup = configure_agency(tmp_path, town[0], "police", port=_free_port())
    port = _free_port()
    process = subprocess.Popen(
        [JUNCTION, "connector", "serve", "--config", str(setup.config_path), "--port", str(port)],
        env={**os.environ, **setup.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the connector exited: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the connector did not start within 30 s")
            time.sleep(0.1)
        yield setup, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow
def test_serve_answers_signed_requests_on_a_real_socket(
    served: tuple[AgencySetup, str], town: tuple[Path, dict[str, Any]]
) -> None:
    setup, base = served
    ring = KeyRing()
    ring.add("police", load_public_key(setup.config_path.parent / "keys" / "police.pub"))
    verifier = Verifier(ring, "broker")
    manifest = verifier.open(httpx.get(f"{base}/v1/manifest").content, Manifest).message
    assert manifest.agency_id == "police"
    person = next(p for p in town[1]["people"] if "police" in p["records"] and p["nhs_number"])
    request = MatchRequest(
        query_id="q-socket",
        requester_agency="social-care",
        purpose="child_protection_enquiry",
        subject=Subject(
            given_name=person["given_name"],
            family_name=person["family_name"],
            date_of_birth=person["date_of_birth"],
            identifiers={"nhs_number": person["nhs_number"]},
        ),
    )
    envelope = setup.broker().seal(request, "police")
    response = httpx.post(f"{base}/v1/match", content=envelope.to_bytes())
    assert response.status_code == 200, response.text
    assert verifier.open(response.content, MatchResponse).message.status == "matched"
    replay = httpx.post(f"{base}/v1/match", content=envelope.to_bytes())
    assert replay.status_code == 409
    assert replay.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{base}/ready").json() == {"status": "ready", "agency": "police"}
    metrics = httpx.get(f"{base}/metrics").text
    assert 'junction_connector_requests_total{endpoint="match",outcome="matched"} 1.0' in metrics
    assert 'junction_connector_requests_total{endpoint="match",outcome="rejected"} 1.0' in metrics


def test_check_accepts_a_good_config(tmp_path: Path, town: tuple[Path, dict[str, Any]]) -> None:
    setup = configure_agency(tmp_path, town[0], "police")
    result = _run(["connector", "check", "--config", str(setup.config_path)], setup.environ)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: police")


def test_check_names_a_missing_table(tmp_path: Path, town: tuple[Path, dict[str, Any]]) -> None:
    setup = configure_agency(tmp_path, town[0], "police")
    mapping = (AGENCIES / "police.yaml").read_text().replace("table: PERSON\n", "table: PEOPLE\n")
    (tmp_path / "police.yaml").write_text(mapping)
    text = setup.config_path.read_text().replace(str(AGENCIES / "police.yaml"), "police.yaml")
    setup.config_path.write_text(text)
    result = _run(["connector", "check", "--config", str(setup.config_path)], setup.environ)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "table PEOPLE not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_names_an_unreachable_database(
    tmp_path: Path, town: tuple[Path, dict[str, Any]]
) -> None:
    setup = configure_agency(tmp_path, town[0], "police")
    result = _run(
        ["connector", "check", "--config", str(setup.config_path)],
        {"JUNCTION_TOWN_DIR": str(tmp_path / "nowhere")},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "cannot reach" in result.stderr
    assert result.stderr.count("\n") == 1


def test_serve_refuses_a_missing_key_in_one_line(
    tmp_path: Path, town: tuple[Path, dict[str, Any]]
) -> None:
    setup = configure_agency(tmp_path, town[0], "police")
    shutil.rmtree(tmp_path / "keys")
    result = _run(["connector", "serve", "--config", str(setup.config_path)], setup.environ)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot read")
    assert "Traceback" not in result.stderr


def test_check_refuses_a_config_with_a_typo(tmp_path: Path) -> None:
    config = tmp_path / "agency.yaml"
    config.write_text("mapping: police.yaml\nsigning_kee: keys/police.key\n")
    result = _run(["connector", "check", "--config", str(config)], {})
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {config}: signing_kee: not a known member; did you mean 'signing_key'?\n"
    )
