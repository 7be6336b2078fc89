"""A setting that cannot work stops a command with one line naming it, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _junction(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command run in ``tmp_path``, so that nothing it writes lands elsewhere."""
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *args],
        cwd=tmp_path,
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


_COMMANDS = {
    "dev-token": ["dev-token", "--role", "caseworker", "--agency", "council"],
    "broker seed": ["broker", "seed", "--file", "registry.yaml"],
    "broker serve": ["broker", "serve", "--port", "1"],
}


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text("agencies: []\n")
    return path


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", _COMMANDS)
def test_a_data_dir_that_is_a_file_is_one_line_in_every_command(
    tmp_path: Path, registry_file: Path, command: str
) -> None:
    taken = tmp_path / "notes.txt"
    taken.write_text("not a folder\n")
    result = _junction(tmp_path, *_COMMANDS[command], JUNCTION_DATA_DIR=str(taken))
    assert _one_line(result) == (
        f"error: a JUNCTION_* setting cannot be used: JUNCTION_DATA_DIR: {taken} is not a folder"
    )
    assert taken.read_text() == "not a folder\n"


@pytest.mark.parametrize("command", _COMMANDS)
def test_a_data_dir_that_cannot_be_created_is_one_line_in_every_command(
    tmp_path: Path, registry_file: Path, command: str
) -> None:
    # Not even root may make a folder in /proc.
    nowhere = Path("/proc/junction-data")
    result = _junction(tmp_path, *_COMMANDS[command], JUNCTION_DATA_DIR=str(nowhere))
    assert _one_line(result) == (
        f"error: JUNCTION_DATA_DIR {nowhere} cannot be created: No such file or directory"
    )


def test_an_empty_data_dir_is_refused_not_taken_as_the_current_one(tmp_path: Path) -> None:
    result = _junction(tmp_path, *_COMMANDS["dev-token"], JUNCTION_DATA_DIR="")
    assert _one_line(result).startswith(
        "error: a JUNCTION_* setting cannot be used: JUNCTION_DATA_DIR: is empty"
    )
    assert not list(tmp_path.glob("dev-oidc.*"))


@pytest.mark.parametrize(
    "command", [["policy", "digest"], ["policy", "test"], _COMMANDS["broker seed"]]
)
def test_bundle_dirs_that_are_no_json_list_are_one_line(
    tmp_path: Path, registry_file: Path, command: list[str]
) -> None:
    result = _junction(tmp_path, *command, JUNCTION_POLICY_BUNDLE_DIRS='["/etc/junction"')
    assert _one_line(result).startswith(
        "error: a JUNCTION_POLICY_* setting cannot be used: JUNCTION_POLICY_BUNDLE_DIRS: "
        "not a JSON list of folders"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:notaport", "the port must be a number from 1 to 65535"),
        ("http://127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("http://[::1", "an IPv6 address goes in brackets, e.g. http://[::1]:8181"),
        ("127.0.0.1:8181", "it must start with http:// or https://"),
        ("http://127.0.0.1:8181/opa", "it takes no path, query or fragment: OPA answers at /v1"),
    ],
)
def test_an_opa_url_that_cannot_be_used_is_one_line(tmp_path: Path, url: str, says: str) -> None:
    example = str(Path(__file__).parents[2] / "policies" / "examples" / "family_query.json")
    result = _junction(
        tmp_path,
        *["policy", "explain", "--input", example, "--engine", "opa"],
        JUNCTION_POLICY_OPA_URL=url,
    )
    assert _one_line(result) == (
        "error: a JUNCTION_POLICY_* setting cannot be used: JUNCTION_POLICY_OPA_URL:"
        f" {says}; write it as http://host:8181"
    )


def test_a_sqlite_file_whose_folder_cannot_be_created_is_one_line(
    tmp_path: Path, registry_file: Path
) -> None:
    url = "sqlite:////proc/junction-data/broker.db"
    result = _junction(tmp_path, *_COMMANDS["broker seed"], JUNCTION_DATABASE_URL=url)
    assert _one_line(result) == (
        "error: cannot create /proc/junction-data, the SQLite file's folder: "
        "No such file or directory"
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://u:secretpw@127.0.0.1:1/x", "mysql://u:***@127.0.0.1:1/x"),
        ("postgresql://u:secretpw@db.internal:abc/x", "postgresql://u:***@db.internal:abc/x"),
    ],
)
def test_a_database_url_that_cannot_be_used_is_shown_without_its_password(
    tmp_path: Path, registry_file: Path, url: str, shown: str
) -> None:
    result = _junction(tmp_path, *_COMMANDS["broker seed"], JUNCTION_DATABASE_URL=url)
    assert _one_line(result).startswith(f"error: cannot use database URL '{shown}': ")
    assert "secretpw" not in result.stderr


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (
            ["dev-token", "--role", "bogus", "--agency", "council"],
            "error: Invalid value for '--role': 'bogus' is not one of 'caseworker',",
        ),
        (["synth", "--people", "0", "--out", "town"], "error: Invalid value for '--people': "),
        (["keys", "generate"], "error: Missing option '--out' (see "),
        (["keys", "generate", "--outt", "k"], "error: No such option: --outt"),
    ],
)
def test_an_option_that_cannot_be_used_is_one_line(
    tmp_path: Path, command: list[str], says: str
) -> None:
    assert _one_line(_junction(tmp_path, *command)).startswith(says)


def test_a_consent_key_that_cannot_be_created_stops_the_broker_in_one_line(
    tmp_path: Path,
) -> None:
    nowhere = Path("/proc/junction-keys/consent.key")
    result = _junction(tmp_path, *_COMMANDS["broker serve"], JUNCTION_CONSENT_KEY=str(nowhere))
    assert _one_line(result) == (
        f"error: cannot create the consent key {nowhere}: No such file or directory"
    )
    assert not (tmp_path / "broker.db").exists()
