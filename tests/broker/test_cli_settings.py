"""A setting that cannot work stops a command with one line naming it, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _junction(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        env={**os.environ, "JUNCTION_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"JUNCTION_PORT": "eighty"}, "JUNCTION_PORT: Input should be a valid integer"),
        (
            {"JUNCTION_ANOMALY_TIMEZONE": "Mars/Olympus"},
            "JUNCTION_ANOMALY_TIMEZONE: 'Mars/Olympus' is not an IANA time zone",
        ),
        (
            {"JUNCTION_ANOMALY_DAY_STARTS": "20", "JUNCTION_ANOMALY_DAY_ENDS": "8"},
            "anomaly_day_starts must be earlier than anomaly_day_ends",
        ),
    ],
)
def test_an_unusable_broker_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    result = _junction(tmp_path, "broker", "serve", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: a JUNCTION_* setting cannot be used: ")
    assert says in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (
            ["connector", "serve", "--config", "agency.yaml"],
            {"JUNCTION_CONNECTOR_PORT": "eighty"},
            "JUNCTION_CONNECTOR_PORT: Input should be a valid integer",
        ),
        (
            ["connector", "serve", "--config", "agency.yaml"],
            {"JUNCTION_CONNECTOR_MAX_BODY_BYTES": "1"},
            "JUNCTION_CONNECTOR_MAX_BODY_BYTES: Input should be greater than or equal to 1024",
        ),
    ],
)
def test_an_unusable_connector_setting_names_the_connector_variable(
    tmp_path: Path, command: list[str], env: dict[str, str], says: str
) -> None:
    result = _junction(tmp_path, *command, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: a JUNCTION_CONNECTOR_* setting cannot be used: ")
    assert says in lines[0]
