"""Every benchmark script still runs, at its smallest size, against the code as it is.

A benchmark calls the library the way a user's code would; when an interface changes
and a script is not changed with it, this is where it shows, not months later when
someone wants the figures. Run as ``run_all.py`` runs them: one process each.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*_bench.py"))
# The soak's --quick is a minute; a few seconds show that it runs.
ARGUMENTS = {"soak_bench.py": ["--minutes", "0.1"]}


def test_every_benchmark_is_here() -> None:
    names = {script.name for script in SCRIPTS}
    assert {"audit_bench.py", "family_query_bench.py", "oversight_bench.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_the_benchmark_runs_and_prints_its_table(
    script: Path, postgres_url: str, run_all: ModuleType
) -> None:
    arguments = ARGUMENTS.get(script.name, ["--quick"])
    if script.name == "audit_bench.py":
        arguments += ["--postgres-url", postgres_url]
    done = subprocess.run(
        [sys.executable, str(script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCHMARKS.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] or done.stdout[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    # The rows run_all.py gathers: figure, value, target, setup, each filled in.
    rows = run_all.table_rows(done.stdout)
    assert rows, done.stdout[-3000:]
    for row in rows:
        figure, value, _, setup = (cell.strip() for cell in row.strip("|").split(" | "))
        assert all((figure, value, setup)), row
