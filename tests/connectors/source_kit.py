"""Helpers for the data-side tests: a small town, its mappings on any backend, a clock."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

from connectors.mapping import Mapping, SqlSourceSpec, load_mapping
from connectors.synth import AGENCY_NAMES, synthesise

REPO = Path(__file__).resolve().parents[2]
AGENCY_FILES = REPO / "connectors" / "agencies"
TODAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def clock() -> dt.datetime:
    return NOW


def write_town(out: Path, people: int, *, seed: int = 5, server_url: str | None = None) -> Any:
    """Synthesise a town (SQLite in ``out``, or every agency in ``server_url``)."""
    urls = dict.fromkeys(AGENCY_NAMES, server_url) if server_url else None
    synthesise(people, out, seed=seed, reference_date=TODAY, server_urls=urls)
    return json.loads((out / "truth.json").read_text(encoding="utf-8"))


def agency_mapping(agency: str, town: Path, url: str | None = None) -> Mapping:
    """The shipped mapping of ``agency``, on the town's SQLite file or on ``url``."""
    mapping = load_mapping(
        AGENCY_FILES / f"{agency}.yaml", environ={"JUNCTION_TOWN_DIR": str(town)}
    )
    if url is None:
        return mapping
    return mapping.model_copy(update={"source": SqlSourceSpec(kind="sql", url=url)})


def export_csv(database: Path, directory: Path) -> None:
    """Every table of an SQLite file as ``<table>.csv`` with a header row."""
    directory.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(database)
    try:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            cursor = connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - test fixture
            with (directory / f"{table}.csv").open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow([d[0] for d in cursor.description])
                for row in cursor:
                    writer.writerow(["" if v is None else v for v in row])
    finally:
        connection.close()
