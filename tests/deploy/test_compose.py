"""The production compose file has the shape docs/deployment.md promises.

Docker is not needed: the file is read as YAML (anchors and merge keys resolved, as
Compose resolves them); ``scripts/test`` also validates it with ``docker-compose config``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.demo.layout import AGENCY_FILES
from connectors.config import load_service_config

ROOT = Path(__file__).resolve().parents[2]
AGENCIES = list(AGENCY_FILES)
# A value that looks like a credential: a password in a URL, or a long random token.
_INLINE_SECRET = re.compile(r"://[^/@\s]+:[^/@\s]+@|[A-Za-z0-9+/_-]{32,}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service.get("environment", {}).items()}


def test_two_broker_replicas_sit_behind_the_proxy(compose: dict[str, Any]) -> None:
    proxy = _service(compose, "proxy")
    assert _depends(proxy) == {"broker-1": "service_healthy", "broker-2": "service_healthy"}
    assert proxy["ports"] == ["${JUNCTION_PROXY_PORT:-8080}:8080"]
    config = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    upstream = re.search(r"upstream brokers \{(.*?)\}", config, re.DOTALL)
    assert upstream is not None
    assert re.findall(r"server (broker-\d):8000", upstream.group(1)) == ["broker-1", "broker-2"]
    assert "proxy_pass http://brokers;" in config
    for name in ("broker-1", "broker-2"):
        broker = _service(compose, name)
        assert "ports" not in broker, "only the proxy is published"
        assert broker["command"] == ["junction", "broker", "serve"]
        assert "/ready" in " ".join(broker["healthcheck"]["test"])


def test_brokers_share_one_postgres_and_decide_on_opa(compose: dict[str, Any]) -> None:
    one, two = (_environment(_service(compose, n)) for n in ("broker-1", "broker-2"))
    assert one == two
    assert one["JUNCTION_DATABASE_URL"] == "postgresql+psycopg://junction@broker-db:5432/junction"
    assert one["JUNCTION_POLICY_ENGINE"] == "opa"
    assert one["JUNCTION_POLICY_OPA_URL"] == "http://opa:8181"
    assert one["JUNCTION_DEV_ISSUER"] == "${JUNCTION_DEV_ISSUER:-false}"
    assert _service(compose, "broker-db")["image"].startswith("postgres:")
    opa = _service(compose, "opa")
    assert opa["image"].startswith("openpolicyagent/opa:")
    assert opa["command"][:2] == ["run", "--server"]
    # The brokers load policies/ into OPA from a read-only mount of the repository's files.
    volumes = _service(compose, "broker-1")["volumes"]
    assert "./policies:/etc/junction/policies:ro" in volumes
    assert one["JUNCTION_POLICY_BUNDLE_DIRS"] == '["/etc/junction/policies"]'
    assert _depends(_service(compose, "broker-1"))["opa"] == "service_healthy"
    assert _depends(_service(compose, "broker-2")) == {"broker-1": "service_healthy"}


@pytest.mark.parametrize("agency", AGENCIES)
def test_each_connector_sits_beside_its_own_seeded_database(
    compose: dict[str, Any], agency: str
) -> None:
    connector = _service(compose, f"{agency}-connector")
    database = _service(compose, f"{agency}-db")
    assert database["image"].startswith(("postgres:", "mariadb:"))
    assert _depends(connector) == {
        f"{agency}-db": "service_healthy",
        "synth": "service_completed_successfully",
    }
    url = _environment(connector)["JUNCTION_CONNECTOR_SOURCE_URL"]
    assert f"@{agency}-db:5432/" in url
    # Only the connector (and the one-shot seeding) can reach the agency's database.
    assert database["networks"] == [agency]
    assert compose["networks"][agency] == {"internal": True}
    users = [
        name
        for name, service in compose["services"].items()
        if agency in service.get("networks", [])
    ]
    assert sorted(users) == sorted([f"{agency}-db", f"{agency}-connector", "synth"])
    # The connector mounts its own key folder and no other agency's.
    mounts = [v.split(":")[0] for v in connector["volumes"]]
    key_folders = {m for m in mounts if m.startswith("./deploy/keys/")}
    assert key_folders == {f"./deploy/keys/{agency}", "./deploy/keys/public"}
    config = load_service_config(ROOT / "deploy" / "agencies" / f"{agency}.yaml")
    assert config.signing_key == Path(f"/run/junction/keys/{agency}.key")
    assert config.listen.port == 8100


def test_the_town_is_seeded_once_into_all_six_databases(compose: dict[str, Any]) -> None:
    synth = _service(compose, "synth")
    shell, flag, script = synth["command"]
    assert (shell, flag) == ("sh", "-c")
    assert "junction synth --people ${JUNCTION_TOWN_PEOPLE:-20000}" in script
    assert "--postgres-url 'postgresql+psycopg://junction@{agency}-db:5432/town'" in script
    # Only once: a later start must not rewrite the tables under running connectors.
    assert script.startswith("test -f /var/lib/junction/town/seeded ||")
    assert _depends(synth) == {f"{a}-db": "service_healthy" for a in AGENCIES}
    assert synth["restart"] == "no"


def test_no_secret_is_written_in_the_file_or_baked_into_the_image(
    compose: dict[str, Any],
) -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    found = [m.group(0) for m in _INLINE_SECRET.finditer(text)]
    assert found == []
    for service in compose["services"].values():
        environment = _environment(service)
        assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in environment)
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#")
    assert "FROM python:3.11-slim" in dockerfile
    assert "\nUSER junction\n" in dockerfile
    copied = re.findall(r"^COPY (\S+)", dockerfile, re.MULTILINE)
    assert not any(path.startswith("deploy/keys") or path in {".", "deploy"} for path in copied)
    assert "deploy/keys" in (ROOT / ".dockerignore").read_text(encoding="utf-8")


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    one_shots = {"keys", "synth", "registry"}
    for name, service in compose["services"].items():
        if name in one_shots:
            assert service["restart"] == "no"
        else:
            assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_the_keys_script_gives_each_service_only_its_own_secrets(tmp_path: Path) -> None:
    from deploy.init_keys import create

    create(tmp_path)
    broker = {p.name for p in (tmp_path / "broker").iterdir()}
    assert {
        "broker.key",
        "audit-log.key",
        "subject-reference.key",
        "consent.key",
        "pgpass",
    } <= broker
    for agency in AGENCIES:
        held = {p.name for p in (tmp_path / agency).iterdir()}
        assert held == {
            f"{agency}.key",
            f"{agency}.pub",
            f"{agency}.refs",
            "linkage.key",
            "consent.key",
            "pgpass",
        }
        password = (tmp_path / f"{agency}-db" / "password").read_text().strip()
        assert (tmp_path / agency / "pgpass").read_text() == (
            f"{agency}-db:5432:*:junction:{password}\n"
        )
        assert (tmp_path / agency / "pgpass").stat().st_mode & 0o077 == 0
    linkage = {(tmp_path / a / "linkage.key").read_text() for a in AGENCIES}
    assert len(linkage) == 1
    consent = {(tmp_path / a / "consent.key").read_text() for a in AGENCIES}
    assert consent == {(tmp_path / "broker" / "consent.key").read_text()}
    registry = yaml.safe_load((tmp_path / "public" / "registry.yaml").read_text())
    urls = {a["id"]: a.get("connector", {}).get("base_url") for a in registry["agencies"]}
    assert urls["police"] == "http://police-connector:8100"
    before = (tmp_path / "police" / "police.key").read_bytes()
    create(tmp_path)
    assert (tmp_path / "police" / "police.key").read_bytes() == before, "keys are kept"


def test_the_proxy_logs_each_request_by_its_path_without_the_query_string() -> None:
    config = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    logs = re.findall(r"^\s*access_log\s+([^;]+);", config, re.MULTILINE)
    assert logs, "the proxy writes an access log"
    formats = dict(re.findall(r"log_format\s+(\w+)\s+((?:'[^']*'\s*)+);", config))
    for directive in logs:
        destination, *named = directive.split()
        assert named, (
            f"access_log {destination} uses nginx's default format, which logs the query string"
        )
        line = formats[named[0]]
        # $request and $request_uri carry the query string; the Referer may too.
        for variable in (
            "$request ",
            '$request"',
            "$request_uri",
            "$args",
            "$query_string",
            "$arg_",
            "$http_referer",
        ):
            assert variable not in line, f"the access log format holds {variable.strip()}"
        assert "$uri" in line
