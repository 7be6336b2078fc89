"""``junction connector``: run an agency's connector, or check its configuration.

Mounted by ``broker.cli``. Errors a user can cause end in one line on stderr, never a
traceback, and exit status 2, as every ``junction`` command's do when it cannot run as
configured: a config, mapping, key, local policy, source or audit database that cannot
be used, here as in an unusable ``JUNCTION_CONNECTOR_*`` setting (``broker.cli.main``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from audit.errors import AuditError
from connectors.config import load_service_config
from connectors.errors import ConnectorError, MappingError

__all__ = ["app"]

app = typer.Typer(
    help="Run an agency's connector next to its own system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOption = Annotated[
    Path, typer.Option("--config", help="The agency's connector config (agency.yaml).")
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _environ() -> dict[str, str]:
    # The mapping file may name ${VARIABLES} (a database password); the command line is
    # the process boundary where the environment is read and handed down.
    return dict(os.environ)


@app.command("check")
def check(config: ConfigOption) -> None:
    """Validate the config, keys, local policy and the mapping against the live source."""
    from connectors.service.wiring import check_connector
    from connectors.settings import ConnectorSettings

    try:
        service_config = load_service_config(config)
        mapping = check_connector(
            service_config, environ=_environ(), source_url=ConnectorSettings().source_url
        )
    except MappingError as exc:
        for problem in exc.problems[:-1]:
            typer.echo(f"error: {problem}", err=True)
        raise _fail(exc.problems[-1]) from None
    except ConnectorError as exc:
        raise _fail(exc.detail) from None
    typer.echo(
        f"ok: {mapping.agency.id} ({mapping.agency.name}): {len(mapping.fields)} fields, "
        f"source and mapping agree, local policy compiles"
    )


@app.command("serve")
def serve(
    config: ConfigOption,
    host: Annotated[str | None, typer.Option(help="Overrides listen.host.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Overrides listen.port (1-65535).", min=1, max=65535)
    ] = None,
) -> None:
    """Serve the connector's HTTP API (manifest, match, fetch, health, ready, metrics)."""
    from connectors.observability import configure_logging
    from connectors.service.wiring import build_connector
    from connectors.serving import ListenError, listening, serve
    from connectors.settings import ConnectorSettings

    settings = ConnectorSettings()
    configure_logging(json_output=settings.log_json, level=settings.log_level)
    try:
        service_config = load_service_config(config)
    except ConnectorError as exc:
        raise _fail(exc.detail) from None
    listen = service_config.listen
    host = host or settings.host or listen.host
    port = port or settings.port or listen.port
    try:
        # The address is taken first: in use, it stops the command before the local
        # audit log or the agency's system is opened.
        with listening(host, port) as sockets:
            try:
                built = build_connector(service_config, settings, environ=_environ())
            except ConnectorError as exc:
                raise _fail(exc.detail) from None
            except AuditError as exc:
                raise _fail(f"the local audit log: {exc}") from None
            try:
                built.agency.check()
            except ConnectorError as exc:
                built.close()
                raise _fail(exc.detail) from None
            try:
                serve(built.app, sockets, host=host, port=port)
            finally:
                built.close()
    except ListenError as exc:
        raise _fail(exc.detail) from None
