"""A small synthetic town and a fully configured connector for one of its agencies."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from audit.checkpoint import NoteSigner
from connectors.protocol.envelope import Signer
from connectors.protocol.keys import KeyPair, generate_key_files
from connectors.synth import synthesise

REPO = Path(__file__).resolve().parents[2]
AGENCIES = REPO / "connectors" / "agencies"
REFERENCE_DATE = dt.date(2026, 11, 1)
LOG_KEY_NAME = "junction.broker/audit"
RDBMS = {"social-care": "social_care"}


def make_town(out: Path, people: int = 300) -> dict[str, Any]:
    """Write a town's six SQLite databases into ``out``; return its ground truth."""
    synthesise(people, out, reference_date=REFERENCE_DATE, seed=7)
    truth: dict[str, Any] = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    return truth


@dataclass
class AgencySetup:
    agency_id: str
    config_path: Path
    broker_key: KeyPair
    log_signer: NoteSigner
    environ: dict[str, str]

    def broker(self, clock: Any = None) -> Signer:
        if clock is None:
            return Signer(self.broker_key, "broker")
        return Signer(self.broker_key, "broker", clock=clock)


def configure_agency(
    root: Path, town_dir: Path, agency: str, *, port: int = 8100, package: str | None = None
) -> AgencySetup:
    """Keys, secrets and ``agency.yaml`` for ``agency`` of the town, under ``root``."""
    keys = root / "keys"
    generate_key_files(keys, agency)
    broker = generate_key_files(keys, "broker")
    generate_key_files(keys, "broker-log")
    log_signer = NoteSigner.from_pem(keys / "broker-log.key", LOG_KEY_NAME)
    (keys / "linkage.key").write_text(secrets.token_hex(32))
    (keys / f"{agency}.refs").write_text(secrets.token_hex(32))
    file_stem = RDBMS.get(agency, agency)
    config = {
        "mapping": str(AGENCIES / f"{file_stem}.yaml"),
        "signing_key": f"keys/{agency}.key",
        "linkage_key": "keys/linkage.key",
        "reference_secret": f"keys/{agency}.refs",
        "broker": {
            "name": "broker",
            "public_key": "keys/broker.pub",
            "log_public_key": "keys/broker-log.pub",
            "log_key_name": LOG_KEY_NAME,
            "log_origin": LOG_KEY_NAME,
        },
        "listen": {"host": "127.0.0.1", "port": port},
        "local_policy": {
            "file": str(AGENCIES / f"{file_stem}.rego"),
            "package": package or f"junction.local.{file_stem}",
        },
        "audit": {"database_url": "sqlite:///state/audit.db", "checkpoint_interval_ms": 50},
        "state_dir": "state",
    }
    path = root / "agency.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return AgencySetup(
        agency_id=agency,
        config_path=path,
        broker_key=broker,
        log_signer=log_signer,
        environ={"JUNCTION_TOWN_DIR": str(town_dir)},
    )
