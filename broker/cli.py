"""The ``junction`` command: one entry point with a group per concern.

Each group lives beside the code it drives (``audit.cli``, ``policies.cli``,
``connectors.cli``); this module only gathers them. Errors a user can cause end in a
one-line message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer
from pydantic import ValidationError

from audit import cli as audit_cli
from audit.checkpoint import NoteVerifier
from audit.errors import CheckpointFormatError
from broker.demo.cli import demo
from broker.identity.cli import dev_token
from broker.registry.cli import seed as registry_seed
from connectors import cli as connector_cli
from connectors.protocol.keys import (
    KeyFileError,
    generate_key_files,
    key_id_for,
    load_public_key,
    public_key_to_b64,
)
from connectors.synth import cli as synth_cli
from policies import cli as policy_cli

__all__ = ["app", "main"]

app = typer.Typer(
    name="junction",
    help="Junction: a federated data-sharing broker for public services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create and inspect Ed25519 signing keys.", no_args_is_help=True)
broker_app = typer.Typer(help="Run the central broker service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(broker_app, name="broker")
app.command("dev-token")(dev_token)
app.command("demo")(demo)
broker_app.command("seed")(registry_seed)
app.command("synth")(synth_cli.synth)
app.add_typer(audit_cli.app, name="audit")
app.add_typer(connector_cli.app, name="connector")
app.add_typer(policy_cli.app, name="policy")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr and return the exit to raise.

    A message that spans lines (a database driver's hint on a second line) is joined
    into one.
    """
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the key files to.")],
    name: Annotated[str, typer.Option(help="Base name of the files: NAME.key, NAME.pub.")] = (
        "signing"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Write a new Ed25519 key pair (private key mode 0600) and print its key id."""
    try:
        pair = generate_key_files(out, name, force=force)
    except KeyFileError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write to {out}: {exc.strerror}") from None
    typer.echo(f"key id: {pair.key_id}")
    typer.echo(f"private key: {out / (name + '.key')}")
    typer.echo(f"public key: {out / (name + '.pub')}")


@keys_app.command("show")
def keys_show(
    file: Annotated[Path, typer.Argument(help="A .key or .pub file.")],
    origin: Annotated[
        str | None,
        typer.Option(
            "--origin",
            help="For an audit log's key: the log's origin (e.g. junction.local/audit), to"
            " also print the key hash its signed checkpoints carry and its verifier key.",
        ),
    ] = None,
) -> None:
    """Print the key id and base64 public key of a key file.

    The key id names envelope and connector keys. An audit log names its key the way
    signed notes do, by a key hash that depends on the log's origin: ``--origin`` prints
    it, as ``junction audit`` and the integrity page show it.
    """
    try:
        public = load_public_key(file)
        log = None if origin is None else NoteVerifier.from_public_key(origin, public)
    except KeyFileError as exc:
        raise fail(str(exc)) from None
    except CheckpointFormatError as exc:
        raise fail(f"--origin: {exc.detail}") from None
    typer.echo(f"key id: {key_id_for(public)}")
    typer.echo(f"public key: {public_key_to_b64(public)}")
    if log is not None:
        typer.echo(f"log key hash: {log.key_hash.hex()}")
        typer.echo(f"verifier key: {log.verifier_key()}")


@broker_app.command("serve")
def broker_serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (1-65535).", min=1, max=65535)
    ] = None,
) -> None:
    """Start the broker's HTTP service (settings from JUNCTION_* variables)."""
    from broker.app import create_app
    from broker.errors import BrokerError
    from broker.foundation import Foundation
    from broker.settings import BrokerSettings
    from connectors.observability import configure_logging
    from connectors.serving import ListenError, listening, serve

    settings = BrokerSettings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    configure_logging(json_output=settings.log_json, level=settings.log_level)
    # The address, the database, the keys and the policy bundle are all tried before
    # the server starts: a setting that cannot work is one line and exit 2, not a
    # start-up traceback.
    try:
        with listening(settings.host, settings.port) as sockets:
            try:
                foundation = Foundation.open(settings)
            except BrokerError as exc:
                raise fail(exc.detail) from None
            app = create_app(settings, opened=foundation)
            serve(app, sockets, host=settings.host, port=settings.port)
    except ListenError as exc:
        raise fail(exc.detail) from None


def _env_prefix(settings_name: str) -> str | None:
    """The environment prefix of the settings class named ``settings_name``, if ours."""
    from broker.settings import BrokerSettings
    from connectors.settings import ConnectorSettings
    from policies.settings import PolicySettings

    for settings in (BrokerSettings, ConnectorSettings, PolicySettings):
        if settings.__name__ == settings_name:
            return str(settings.model_config.get("env_prefix", ""))
    return None


def settings_problem(exc: ValidationError, prefix: str = "JUNCTION_") -> str:
    """One line naming each ``{prefix}*`` variable that could not be used, and why."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "_".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{prefix}{where}: {message}" if where else message)
    return f"a {prefix}* setting cannot be used: " + "; ".join(problems)


def main() -> None:
    """Entry point of the ``junction`` console script."""
    # A command's standard output is its answer (JSON, a token, a digest) and nothing
    # else: log lines go to standard error, as the services' do once configured.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        # A usage error (an option's value of the wrong type or out of range, an
        # unknown or missing option) is one line too, not a boxed usage text. Asked for
        # nothing, a group has printed its help already and says nothing more.
        message = exc.format_message().replace(": Value error, ", ": ")
        if message:
            context = getattr(exc, "ctx", None)
            hint = f" (see {context.command_path} --help)" if context is not None else ""
            fail(message.rstrip(".") + hint)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        raise SystemExit(1) from None
    except ValidationError as exc:
        # Settings are read from the environment when a command starts; a value that
        # cannot work is the operator's to fix, so it gets a line, not a traceback,
        # naming the variable as the operator sets it (each service has its prefix).
        prefix = _env_prefix(exc.title)
        if prefix is None:
            raise
        typer.echo(f"error: {settings_problem(exc, prefix)}", err=True)
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
