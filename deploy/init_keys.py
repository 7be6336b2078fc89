"""Create every key, secret and password the production compose file mounts.

Run once before ``docker compose up`` (the compose file's one-shot ``keys`` service runs
it too, and it is safe to run again: files that exist are kept, so keys never change
under a running deployment)::

    python deploy/init_keys.py deploy/keys

It writes, under the output directory, one folder per service, so each container mounts
only its own secrets:

- ``broker/``: the broker's data directory: its envelope key (``broker.key``), the audit
  log's checkpoint key (``audit-log.key``), the development issuer's key, the secrets of
  subject references, idempotent answers and web sessions, the consent key it shares
  with the connectors, and ``pgpass`` for its PostgreSQL;
- ``public/``: the broker's two public keys the connectors pin, and ``registry.yaml``
  (the agencies, their connectors' public keys, the sharing agreements) for
  ``junction broker seed``;
- ``<agency>/``: the connector's signing key, its reference secret, the linkage key all
  connectors share, the broker's consent key, and ``pgpass`` for the agency's own
  database;
- ``broker-db/`` and ``<agency>-db/``: the database servers' ``password`` files;
- ``synth/``: ``pgpass`` for the one-shot service that seeds the six agency databases.

Run as root (as the ``keys`` service does), files are handed to the user the services
run as (uid 10001; PostgreSQL's uid 999 for the password files). Ed25519 keys are made
as ``junction keys generate`` makes them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

import yaml

from broker.demo.layout import AGENCY_DIR, AGENCY_FILES, LEGAL_BASES, PURPOSES, REQUESTER
from connectors.mapping import load_mapping
from connectors.protocol.keys import generate_key_files, load_public_key, public_key_to_b64

SERVICE_UID = 10001
POSTGRES_UID = 999
DB_USER = "junction"
CONNECTOR_PORT = 8100
FIRST_AGENCY = next(iter(AGENCY_FILES))


def _owned(path: Path, uid: int, mode: int) -> None:
    path.chmod(mode)
    if os.geteuid() == 0:
        os.chown(path, uid, uid)


def _folder(root: Path, name: str, uid: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    _owned(folder, uid, 0o700 if name != "public" else 0o755)
    return folder


def _key(folder: Path, name: str) -> None:
    if not (folder / f"{name}.key").exists():
        generate_key_files(folder, name)
    _owned(folder / f"{name}.key", SERVICE_UID, 0o600)
    _owned(folder / f"{name}.pub", SERVICE_UID, 0o644)


def _secret(path: Path, value: str, uid: int = SERVICE_UID) -> str:
    """The text in ``path``, written as ``value`` if the file is missing."""
    if not path.exists():
        path.write_text(value + "\n", encoding="utf-8")
    _owned(path, uid, 0o400 if uid == POSTGRES_UID else 0o600)
    return path.read_text(encoding="utf-8").strip()


def _password(root: Path, server: str) -> str:
    return _secret(
        _folder(root, f"{server}-db", POSTGRES_UID) / "password",
        secrets.token_urlsafe(24),
        POSTGRES_UID,
    )


def _pgpass(path: Path, lines: list[str]) -> None:
    # libpq reads it through PGPASSFILE and ignores it unless only its owner may read it.
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    _owned(path, SERVICE_UID, 0o600)


def _registry(public: Path, keys: Path) -> None:
    agencies: list[dict[str, object]] = [
        {"id": REQUESTER[0], "name": REQUESTER[1], "type": REQUESTER[2]}
    ]
    agreements = []
    for agency, stem in AGENCY_FILES.items():
        # Only the agency's name, type and fields are read; the source is never opened.
        mapping = load_mapping(AGENCY_DIR / f"{stem}.yaml", environ={"JUNCTION_TOWN_DIR": "-"})
        public_key = public_key_to_b64(load_public_key(keys / agency / f"{agency}.pub"))
        agencies.append(
            {
                "id": agency,
                "name": mapping.agency.name,
                "type": mapping.agency.type,
                "connector": {
                    "base_url": f"http://{agency}-connector:{CONNECTOR_PORT}",
                    "public_key": public_key,
                },
            }
        )
        agreements.append(
            {
                "id": f"dsa-{REQUESTER[0]}-{agency}",
                "parties": [REQUESTER[0], agency],
                "purposes": list(PURPOSES),
                "legal_bases": list(LEGAL_BASES),
                "fields": sorted(mapping.fields),
                "valid_from": "2025-04-01T00:00:00Z",
                "status": "active",
            }
        )
    target = public / "registry.yaml"
    target.write_text(
        yaml.safe_dump({"agencies": agencies, "agreements": agreements}, sort_keys=False),
        encoding="utf-8",
    )
    _owned(target, SERVICE_UID, 0o644)


def create(root: Path) -> None:
    """Create (or complete) the key folders under ``root``. Raises ``OSError``."""
    root.mkdir(parents=True, exist_ok=True)
    broker = _folder(root, "broker", SERVICE_UID)
    public = _folder(root, "public", SERVICE_UID)
    for name in ("broker", "audit-log", "dev-oidc"):
        _key(broker, name)
    for name in ("subject-reference", "idempotency", "web-session"):
        _secret(broker / f"{name}.key", secrets.token_hex(32))
    consent = _secret(broker / "consent.key", secrets.token_hex(32))
    _pgpass(broker / "pgpass", [f"broker-db:5432:*:{DB_USER}:{_password(root, 'broker')}"])
    for name in ("broker", "audit-log"):
        (public / f"{name}.pub").write_bytes((broker / f"{name}.pub").read_bytes())
        _owned(public / f"{name}.pub", SERVICE_UID, 0o644)

    linkage = secrets.token_hex(32)
    synth_lines = []
    for agency in AGENCY_FILES:
        folder = _folder(root, agency, SERVICE_UID)
        _key(folder, agency)
        _secret(folder / f"{agency}.refs", secrets.token_hex(32))
        # Every connector must hold the same linkage key: the first one made is copied.
        linkage = _secret(root / FIRST_AGENCY / "linkage.key", linkage)
        _secret(folder / "linkage.key", linkage)
        # ...and the broker's consent key, so the broker finds consent by their records.
        _secret(folder / "consent.key", consent)
        line = f"{agency}-db:5432:*:{DB_USER}:{_password(root, agency)}"
        _pgpass(folder / "pgpass", [line])
        synth_lines.append(line)
    _pgpass(_folder(root, "synth", SERVICE_UID) / "pgpass", synth_lines)
    _registry(public, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where the key folders go (deploy/keys)")
    args = parser.parse_args(argv)
    try:
        create(args.out)
    except OSError as exc:
        sys.stderr.write(f"error: cannot write the keys under {args.out}: {exc}\n")
        return 1
    sys.stdout.write(f"keys and secrets are in {args.out.resolve()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
