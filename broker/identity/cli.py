"""``junction dev-token``: print a token signed by the development issuer's key."""

from __future__ import annotations

import re
from typing import Annotated

import typer

from broker.errors import BrokerError
from broker.identity.principal import Role

__all__ = ["dev_token"]

# As the registry spells agency ids (broker/registry/schemas.py).
_AGENCY_ID = re.compile(r"[a-z][a-z0-9_-]{1,62}")


def dev_token(
    role: Annotated[Role, typer.Option(help="The role the token grants.")],
    agency: Annotated[str, typer.Option(help="The caller's agency id, e.g. council.")],
    name: Annotated[str | None, typer.Option(help="Display name; defaults to the role.")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds (at most 86400).")] = 3600,
    job_role: Annotated[
        str | None,
        typer.Option(help="The caller's job, e.g. social_worker or early_help_worker."),
    ] = None,
) -> None:
    """Print a development bearer token (settings from JUNCTION_* variables).

    DEVELOPMENT ONLY: the broker accepts it while JUNCTION_DEV_ISSUER is on and
    JUNCTION_OIDC_ISSUER is unset, with the same JUNCTION_DATA_DIR and public URL.
    """
    from broker.foundation import open_dev_issuer
    from broker.settings import BrokerSettings

    if not _AGENCY_ID.fullmatch(agency):
        typer.echo(
            f"error: --agency {agency!r} is not an agency id: lower-case letters, digits,"
            " '_' or '-', as registered (e.g. council)",
            err=True,
        )
        raise typer.Exit(2)
    settings = BrokerSettings()
    if not settings.dev_issuer or settings.oidc_issuer:
        typer.echo(
            "error: this broker does not use the development issuer (see "
            "JUNCTION_DEV_ISSUER, JUNCTION_OIDC_ISSUER); "
            f"sign in at {settings.resolved_issuer()}",
            err=True,
        )
        raise typer.Exit(2)
    try:
        issuer = open_dev_issuer(settings)
        token = issuer.mint(
            role=role,
            agency=agency,
            name=name or f"Dev {role.value}",
            ttl_seconds=ttl,
            job_role=job_role,
        )
    except (BrokerError, ValueError) as exc:
        typer.echo(f"error: {getattr(exc, 'detail', exc)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)
