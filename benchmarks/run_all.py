"""Run every benchmark and print one markdown table of all their figures.

    .venv/bin/python benchmarks/run_all.py            # each benchmark's --quick version
    .venv/bin/python benchmarks/run_all.py --full     # the real sizes (takes a while)
    .venv/bin/python benchmarks/run_all.py audit policy --timeout 120

Each ``benchmarks/*_bench.py`` runs in its own process with a time limit; the rows it
prints (``| figure | value | target | setup |``) are gathered under one header. A
benchmark that fails or runs out of time gets a row saying so (with the last line it
wrote to stderr), and the exit status is 1. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = ("| figure | value | target | setup |", "|---|---|---|---|")
QUICK_TIMEOUT = 300.0
FULL_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Outcome:
    name: str
    rows: list[str]
    problem: str | None
    seconds: float


def discover(directory: Path, names: list[str]) -> list[Path]:
    """The ``*_bench.py`` scripts in ``directory``, or those starting with one of ``names``."""
    scripts = sorted(directory.glob("*_bench.py"))
    if names:
        scripts = [s for s in scripts if any(s.stem.startswith(n) for n in names)]
    return scripts


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _is_separator(cells: list[str]) -> bool:
    return all(cell and set(cell) <= set("-: ") for cell in cells)


def table_rows(stdout: str) -> list[str]:
    """The markdown rows in ``stdout`` as ``| figure | value | target | setup |`` rows.

    A benchmark printing more columns (a baseline beside the value, say) under its own
    header keeps them: the middle cells are joined into the value, each named by its
    header, and the last two are taken as target and setup.
    """
    lines = [line.strip() for line in stdout.splitlines()]
    rows = []
    header: list[str] = []
    for position, text in enumerate(lines):
        if not (text.startswith("|") and text.endswith("|") and text.count("|") >= 5):
            continue
        cells = _cells(text)
        following = lines[position + 1] if position + 1 < len(lines) else ""
        if following.startswith("|") and _is_separator(_cells(following)):
            header = cells
            continue
        if _is_separator(cells):
            continue
        if len(cells) > 4:
            names = header[1:-2] if len(header) == len(cells) else ["value"] * (len(cells) - 3)
            value = "; ".join(
                f"{name}: {cell}" for name, cell in zip(names, cells[1:-2], strict=True)
            )
            cells = [cells[0], value, cells[-2], cells[-1]]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].replace("|", "/")[:160] if lines else "no output"


def run(script: Path, *, full: bool, timeout: float) -> Outcome:
    """Run one benchmark in a subprocess; never raises for the benchmark's own failure."""
    command = [sys.executable, str(script)] + ([] if full else ["--quick"])
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=HERE.parent,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Outcome(
            script.stem,
            table_rows(partial),
            f"timed out after {timeout:.0f} s",
            time.perf_counter() - started,
        )
    seconds = time.perf_counter() - started
    rows = table_rows(done.stdout)
    if done.returncode != 0:
        problem = f"failed (exit {done.returncode}): {_last_line(done.stderr or done.stdout)}"
        return Outcome(script.stem, rows, problem, seconds)
    if not rows:
        return Outcome(script.stem, rows, "printed no table rows", seconds)
    return Outcome(script.stem, rows, None, seconds)


def render(outcomes: list[Outcome], *, full: bool) -> str:
    lines = list(HEADER)
    for outcome in outcomes:
        lines.extend(outcome.rows)
        if outcome.problem is not None:
            mode = "--full" if full else "--quick"
            lines.append(f"| {outcome.name} | {outcome.problem} | runs to completion | {mode} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only benchmarks starting with these")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small versions (the default)")
    size.add_argument("--full", action="store_true", help="the real sizes")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds allowed to each benchmark"
    )
    args = parser.parse_args(argv)
    timeout = args.timeout or (FULL_TIMEOUT if args.full else QUICK_TIMEOUT)
    scripts = discover(HERE, args.names)
    if not scripts:
        print(f"error: no benchmark matches {' '.join(args.names)}", file=sys.stderr)
        return 2
    outcomes = []
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        outcome = run(script, full=args.full, timeout=timeout)
        verdict = outcome.problem or f"{len(outcome.rows)} figures"
        print(f"  {verdict} in {outcome.seconds:.1f} s", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    sys.stdout.write(render(outcomes, full=args.full))
    return 1 if any(o.problem for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
