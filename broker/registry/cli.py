"""``junction broker seed``: register agencies, connectors and agreements from YAML."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer

from broker.errors import BrokerError

__all__ = ["seed"]


def seed(
    file: Annotated[Path, typer.Option("--file", help="The registry YAML file.")],
) -> None:
    """Seed the registry from FILE; each change is audited (settings from JUNCTION_*).

    Connectors listed in the file must be running: their manifests are fetched.
    """
    from broker.foundation import Foundation
    from broker.identity.principal import Principal, Role
    from broker.registry.seed import load_registry_file
    from broker.settings import BrokerSettings

    user = getpass.getuser()
    actor = Principal(subject=f"cli:{user}", name=user, role=Role.ADMIN, agency="broker")

    async def run() -> str:
        foundation = Foundation.open(BrokerSettings())
        try:
            report = await load_registry_file(foundation.registry, actor, file)
        finally:
            await foundation.aclose()
        return (
            f"{report.agencies} agencies, {report.connectors} connectors, "
            f"{report.agreements} agreements in {file}; {report.changes} changes recorded"
        )

    try:
        summary = asyncio.run(run())
    except BrokerError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(summary)
