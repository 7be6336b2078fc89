"""``junction demo``: the whole region on one machine, in one command."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

__all__ = ["demo"]


def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the town, keys and databases live.")
    ] = Path("var/demo"),
    people: Annotated[int, typer.Option(help="Size of the synthetic town.", min=50)] = 20_000,
    port: Annotated[int, typer.Option(help="The broker's port.", min=1, max=65535)] = 8000,
    first_connector_port: Annotated[
        int,
        typer.Option(help="The first of six consecutive connector ports.", min=1, max=65535),
    ] = 8101,
) -> None:
    """Generate (or reuse) a synthetic town and run six agency connectors and the broker.

    The town is made once and reused on the next run. Stop everything with Ctrl-C.
    """
    from broker.demo.launcher import DemoProcesses, LaunchError, check_ports
    from broker.demo.layout import DemoPorts, prepare
    from connectors.errors import ConnectorError
    from connectors.synth import SynthError

    ports = DemoPorts(port, first_connector_port)
    try:
        check_ports(ports)
    except LaunchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console(stderr=True)
    try:
        with Progress(
            TextColumn("[bold]synthetic town"), BarColumn(), TaskProgressColumn(), console=console
        ) as progress:
            task = progress.add_task("town", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            layout = prepare(directory, people, ports=ports, progress=advance)
    except (SynthError, ConnectorError, OSError) as exc:
        typer.echo(f"error: cannot prepare the demo in {directory}: {exc}", err=True)
        raise typer.Exit(2) from None

    processes = DemoProcesses(layout, layout.root / "logs")
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # Installed explicitly: a shell may start a background job with SIGINT ignored.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        console.print("starting six agency connectors ...")
        processes.start_connectors()
        console.print(processes.seed_registry())
        console.print("starting the broker ...")
        processes.start_broker()
        url = layout.broker_url()
        console.print(
            f"\n[bold green]Junction is running[/] at {url}\n"
            f"  web pages:   {url}/web  (sign in with the development issuer: pick a role)\n"
            f"  API docs:    {url}/docs\n"
            f"  a token:     JUNCTION_DATA_DIR={layout.broker_data} JUNCTION_PORT={port} \\\n"
            f"               .venv/bin/junction dev-token --role caseworker --agency council"
            f" --job-role social_worker\n"
            f"  logs:        {layout.root / 'logs'}\n"
            "Press Ctrl-C to stop."
        )
        while not stopping:
            processes.check_running()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except LaunchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        console.print("stopping ...")
        processes.stop()
    console.print("stopped.")
