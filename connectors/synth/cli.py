"""``junction synth``: generate the demo town and its six agency databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.synth import AGENCY_NAMES, SynthError, synthesise

__all__ = ["synth"]

# The oldest people are nearly 89: a town older than this holds people born before 1880,
# whom no family query may name (and dates before year 1 that cannot be held at all).
_EARLIEST_REFERENCE = dt.date(1970, 1, 1)


def synth(
    *,
    people: Annotated[int, typer.Option("--people", min=1, help="How many people.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the databases and truth.")],
    seed: Annotated[int, typer.Option(help="The same seed gives the same town.")] = 1,
    reference_date: Annotated[
        str | None,
        typer.Option(help="The town's 'today' (YYYY-MM-DD); defaults to today's date."),
    ] = None,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            help="Write agencies to PostgreSQL; {agency} in the URL gives each its own database."
        ),
    ] = None,
    mariadb_url: Annotated[
        str | None,
        typer.Option(help="Write agencies to MariaDB/MySQL (used if no PostgreSQL URL)."),
    ] = None,
) -> None:
    """Generate a synthetic town: one database per agency plus truth.json/truth.csv."""
    try:
        today = (
            dt.date.fromisoformat(reference_date)
            if reference_date
            else dt.datetime.now(dt.UTC).date()
        )
    except ValueError:
        typer.echo(f"error: --reference-date {reference_date!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(2) from None
    if today < _EARLIEST_REFERENCE:
        typer.echo(
            f"error: --reference-date {reference_date!r} is too early: its oldest people would"
            f" be born before 1880; give {_EARLIEST_REFERENCE} or later",
            err=True,
        )
        raise typer.Exit(2) from None
    if out.exists() and not out.is_dir():
        typer.echo(f"error: --out {out} is a file, not a folder", err=True)
        raise typer.Exit(2)
    server = postgres_url or mariadb_url
    urls = dict.fromkeys(AGENCY_NAMES, server) if server else None
    columns = (
        TextColumn("writing agencies"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # On a terminal's standard error only, and gone once the work is: what remains is the
    # summary, or the one error line.
    console = Console(stderr=True)
    try:
        with Progress(
            *columns, console=console, transient=True, disable=not console.is_terminal
        ) as bar:
            task = bar.add_task("rows", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = synthesise(
                people, out, seed=seed, reference_date=today, server_urls=urls, progress=advance
            )
    except SynthError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{result.people} people in {result.households} households ({today})")
    for agency, count in result.records.items():
        typer.echo(f"  {agency}: {count} people -> {result.databases[agency]}")
    typer.echo(f"  ground truth -> {out / 'truth.json'}, {out / 'truth.csv'}")
