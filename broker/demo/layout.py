"""Everything the demo needs on disk, made once and reused on the next run.

``prepare(root, people)`` writes, under ``root``:

- ``town/``: the synthetic town's six agency databases and its ground truth (regenerated
  only when the size or seed changes);
- ``keys/``: every agency's signing key and reference secret, the linkage key the
  connectors share, and the broker's envelope key;
- ``agencies/<agency>/agency.yaml``: each connector's configuration (its local audit log
  and state live beside it);
- ``registry.yaml``: the agencies, their connectors and the data sharing agreements
  between the council (whose caseworkers ask) and each agency;
- ``broker/``: the broker's data directory, with its audit-log key and the consent key
  the connectors share with it.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from connectors.mapping import load_mapping
from connectors.protocol.keys import generate_key_files, load_public_key, public_key_to_b64
from connectors.synth import synthesise

__all__ = ["AGENCY_FILES", "DemoLayout", "DemoPorts", "prepare"]

AGENCY_DIR = Path(__file__).resolve().parents[2] / "connectors" / "agencies"
# agency id -> the mapping and local policy files that describe it
AGENCY_FILES = {
    "education": "education",
    "police": "police",
    "health": "health",
    "housing": "housing",
    "social-care": "social_care",
    "benefits": "benefits",
}
REQUESTER = ("council", "Northbrook Borough Council", "local_authority")
AUDIT_ORIGIN = "junction.demo/audit"
BROKER_NAME = "broker"
PURPOSES = (
    "early_help_assessment",
    "child_in_need_assessment",
    "child_protection_enquiry",
    "youth_offending_assessment",
)
LEGAL_BASES = (
    "consent",
    "ca2004_s10",
    "ca2004_s11",
    "ca1989_s17",
    "ca1989_s47",
    "cda1998_s115",
    "dea2017_s35",
)


@dataclass(frozen=True, slots=True)
class DemoPorts:
    broker: int = 8000
    first_connector: int = 8101


@dataclass(frozen=True, slots=True)
class DemoLayout:
    root: Path
    ports: DemoPorts

    @property
    def town(self) -> Path:
        return self.root / "town"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def broker_data(self) -> Path:
        return self.root / "broker"

    @property
    def registry_file(self) -> Path:
        return self.root / "registry.yaml"

    def agency_config(self, agency: str) -> Path:
        return self.root / "agencies" / agency / "agency.yaml"

    def connector_port(self, agency: str) -> int:
        return self.ports.first_connector + list(AGENCY_FILES).index(agency)

    def connector_url(self, agency: str) -> str:
        return f"http://127.0.0.1:{self.connector_port(agency)}"

    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.broker}"

    def connector_environ(self) -> dict[str, str]:
        return {"JUNCTION_TOWN_DIR": str(self.town)}

    def broker_environ(self) -> dict[str, str]:
        """The ``JUNCTION_*`` settings the demo broker runs with."""
        return {
            "JUNCTION_DATA_DIR": str(self.broker_data),
            "JUNCTION_PORT": str(self.ports.broker),
            "JUNCTION_AUDIT_ORIGIN": AUDIT_ORIGIN,
            "JUNCTION_NAME": BROKER_NAME,
            "JUNCTION_SIGNING_KEY": str(self.keys / "broker.key"),
        }


def _town(
    layout: DemoLayout, people: int, seed: int, progress: Callable[[int, int], None] | None
) -> None:
    marker = layout.town / "town.json"
    wanted = {"people": people, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return
    synthesise(
        people,
        layout.town,
        seed=seed,
        reference_date=dt.date(2026, 11, 1),
        progress=progress,
    )
    marker.write_text(json.dumps(wanted))


def _key(directory: Path, name: str) -> None:
    if not (directory / f"{name}.key").exists():
        generate_key_files(directory, name)


def _secret(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)


def _keys(layout: DemoLayout) -> None:
    _key(layout.keys, "broker")
    # The broker reads its audit-log key from its data directory.
    _key(layout.broker_data, "audit-log")
    _secret(layout.keys / "linkage.key")
    # ...and its consent key, which every connector is given a copy of (here: its path).
    _secret(layout.broker_data / "consent.key")
    for agency in AGENCY_FILES:
        _key(layout.keys, agency)
        _secret(layout.keys / f"{agency}.refs")


def _agency_configs(layout: DemoLayout) -> None:
    for agency, stem in AGENCY_FILES.items():
        path = layout.agency_config(agency)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "mapping": str(AGENCY_DIR / f"{stem}.yaml"),
            "signing_key": str(layout.keys / f"{agency}.key"),
            "linkage_key": str(layout.keys / "linkage.key"),
            "consent_key": str(layout.broker_data / "consent.key"),
            "reference_secret": str(layout.keys / f"{agency}.refs"),
            "broker": {
                "name": BROKER_NAME,
                "public_key": str(layout.keys / "broker.pub"),
                "log_public_key": str(layout.broker_data / "audit-log.pub"),
                "log_key_name": AUDIT_ORIGIN,
                "log_origin": AUDIT_ORIGIN,
            },
            "listen": {"host": "127.0.0.1", "port": layout.connector_port(agency)},
            "local_policy": {
                "file": str(AGENCY_DIR / f"{stem}.rego"),
                "package": f"junction.local.{stem}",
            },
            "audit": {"database_url": f"sqlite:///{path.parent / 'audit.db'}"},
            "state_dir": str(path.parent / "state"),
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _registry(layout: DemoLayout) -> None:
    agencies: list[dict[str, object]] = [
        {"id": REQUESTER[0], "name": REQUESTER[1], "type": REQUESTER[2]}
    ]
    agreements = []
    for agency, stem in AGENCY_FILES.items():
        mapping = load_mapping(AGENCY_DIR / f"{stem}.yaml", environ=layout.connector_environ())
        public = public_key_to_b64(load_public_key(layout.keys / f"{agency}.pub"))
        agencies.append(
            {
                "id": agency,
                "name": mapping.agency.name,
                "type": mapping.agency.type,
                "connector": {"base_url": layout.connector_url(agency), "public_key": public},
            }
        )
        agreements.append(
            {
                "id": f"dsa-council-{agency}",
                "parties": [REQUESTER[0], agency],
                "purposes": list(PURPOSES),
                "legal_bases": list(LEGAL_BASES),
                "fields": sorted(mapping.fields),
                "valid_from": "2025-04-01T00:00:00Z",
                "status": "active",
            }
        )
    layout.registry_file.write_text(
        yaml.safe_dump({"agencies": agencies, "agreements": agreements}, sort_keys=False),
        encoding="utf-8",
    )


def prepare(
    root: Path,
    people: int = 20_000,
    *,
    seed: int = 1,
    ports: DemoPorts | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoLayout:
    """Create (or reuse) the demo's town, keys, connector configs and registry file.

    Raises ``SynthError`` if the town cannot be written, ``OSError`` for other files.
    """
    layout = DemoLayout(root.resolve(), ports or DemoPorts())
    layout.root.mkdir(parents=True, exist_ok=True)
    _town(layout, people, seed, progress)
    _keys(layout)
    _agency_configs(layout)
    _registry(layout)
    return layout
