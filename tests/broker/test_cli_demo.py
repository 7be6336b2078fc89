"""``junction demo`` whose ports are taken or wrong: it says which and starts nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_run(count: int) -> int:
    """The first of ``count`` consecutive free ports of 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            start: int = first.getsockname()[1]
        if start + count <= 65535 and all(_is_free(start + i) for i in range(count)):
            return start
    raise RuntimeError("no run of free ports")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def _taken(port: int) -> Iterator[None]:
    """``port`` held by a listener that never answers, as another program would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        yield


def _demo(tmp_path: Path, port: int, first_connector_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "broker.cli", "demo", "--dir", str(tmp_path / "demo")),
            *("--people", "50", "--port", str(port)),
            *("--first-connector-port", str(first_connector_port)),
        ],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _the_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "running" not in result.stdout + result.stderr
    return lines[0]


def test_a_broker_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    broker = _free_run(7)
    with _taken(broker):
        result = _demo(tmp_path, broker, broker + 1)
    assert _the_error(result) == (
        f"error: port {broker}, for the broker, cannot be used (Address already in use;"
        " another Junction?); pick another with --port"
    )
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(("taken", "agency"), [(0, "education"), (2, "health"), (5, "benefits")])
def test_a_connector_port_in_use_is_named_and_nothing_starts(
    tmp_path: Path, taken: int, agency: str
) -> None:
    broker = _free_run(7)
    with _taken(broker + 1 + taken):
        result = _demo(tmp_path, broker, broker + 1)
    assert _the_error(result) == (
        f"error: port {broker + 1 + taken}, for the {agency} connector, cannot be used"
        " (Address already in use; another Junction?); pick another with"
        " --first-connector-port"
    )
    assert not (tmp_path / "demo").exists()


def test_connector_ports_that_run_past_65535_are_refused(tmp_path: Path) -> None:
    result = _demo(tmp_path, 8000, 65533)
    assert _the_error(result) == (
        "error: --first-connector-port 65533 leaves no room for 6 connector ports"
        " (the last would be 65538); pick one up to 65530"
    )


def test_a_broker_port_among_the_connectors_is_refused(tmp_path: Path) -> None:
    result = _demo(tmp_path, 8103, 8101)
    assert _the_error(result) == (
        "error: --port 8103 is one of the connectors' ports 8101-8106; pick another"
    )
