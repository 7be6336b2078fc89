"""``junction broker seed``: register agencies, connectors and agreements from YAML."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer

from broker.errors import BrokerError, ConfigurationError

__all__ = ["seed"]


def seed(
    file: Annotated[Path, typer.Option("--file", help="The registry YAML file.")],
) -> None:
    """Seed the registry from FILE; each change is audited (settings from JUNCTION_*).

    Connectors listed in the file must be running: their manifests are fetched.
    """
    import httpx

    from broker.db import Database
    from broker.foundation import open_audit_log, prepare_data_dir
    from broker.identity.principal import Principal, Role
    from broker.registry.seed import load_registry_file, read_registry_file
    from broker.registry.service import RegistryService
    from broker.settings import BrokerSettings
    from broker.subjects import consent_key_id_of
    from policies.bundle import load_bundle
    from policies.errors import PolicyError
    from policies.settings import PolicySettings

    user = getpass.getuser()
    actor = Principal(subject=f"cli:{user}", name=user, role=Role.ADMIN, agency="broker")

    async def run() -> str:
        # Only what seeding needs: the registry, its database and the audit log. The
        # policy bundle is read for its catalogue (the purposes and bases agreements may
        # name), not put in force: a seed is no policy change and logs none.
        settings = BrokerSettings()
        read_registry_file(file)  # a bad file is reported before anything is opened
        try:
            catalogue = load_bundle(PolicySettings().bundle_dirs).data.get("catalogue", {})
        except PolicyError as exc:
            raise ConfigurationError(f"cannot read the policy catalogue: {exc}") from None
        prepare_data_dir(settings)
        db = Database.open(settings.resolved_database_url())
        try:
            audit = open_audit_log(settings)
            try:
                async with httpx.AsyncClient(timeout=10.0) as http:
                    registry = RegistryService(
                        db,
                        audit,
                        http=http,
                        broker_name=settings.name,
                        catalogue=lambda: catalogue,
                        # Seeding makes no keys: the broker's, if it has one yet.
                        consent_key_id=consent_key_id_of(settings.consent_key_file()),
                        manifest_timeout_seconds=settings.manifest_timeout_seconds,
                    )
                    report = await load_registry_file(registry, actor, file)
            finally:
                audit.close()
        finally:
            db.close()
        return (
            f"{report.agencies} agencies, {report.connectors} connectors, "
            f"{report.agreements} agreements in {file}; {report.changes} changes recorded"
        )

    try:
        summary = asyncio.run(run())
    except BrokerError as exc:
        # One line, with what the seed notes (the changes it made before the error).
        said = "; ".join([exc.detail, *getattr(exc, "__notes__", [])])
        line = " ".join(part.strip() for part in said.splitlines() if part.strip())
        typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary)
