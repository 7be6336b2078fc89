"""``benchmarks/run_all.py`` gathers every benchmark's rows into one table."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType


def _bench(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}_bench.py"
    path.write_text("import sys, time\n" + body + "\n")
    return path


def test_rows_failures_and_timeouts_end_up_in_one_table(
    run_all: ModuleType, tmp_path: Path
) -> None:
    _bench(
        tmp_path,
        "good",
        "assert sys.argv[1:] == ['--quick']\n"
        "print('warming up')\n"
        "print('| figure | value | target | setup |')\n"
        "print('|---|---|---|---|')\n"
        "print('| hashes/s | 1,000/s | >= 500/s | 1 core |')",
    )
    _bench(
        tmp_path,
        "broken",
        "sys.stderr.write('Traceback\\nValueError: no database\\n')\nsys.exit(3)",
    )
    _bench(tmp_path, "slow", "print('| partial | 1 | - | - |', flush=True)\ntime.sleep(30)")
    _bench(
        tmp_path,
        "wide",
        "print('| figure | value (ms) | bare SQL (ms) | target | setup |')\n"
        "print('|---|---|---|---|---|')\n"
        "print('| match p50 | 12.0 | 1.5 | <= 15 ms | SQLite |')",
    )
    scripts = run_all.discover(tmp_path, [])
    assert [s.stem for s in scripts] == ["broken_bench", "good_bench", "slow_bench", "wide_bench"]
    outcomes = [run_all.run(s, full=False, timeout=5) for s in scripts]
    table = run_all.render(outcomes, full=False).splitlines()
    assert table[:2] == ["| figure | value | target | setup |", "|---|---|---|---|"]
    assert "| hashes/s | 1,000/s | >= 500/s | 1 core |" in table
    assert "| match p50 | value (ms): 12.0; bare SQL (ms): 1.5 | <= 15 ms | SQLite |" in table
    assert "| partial | 1 | - | - |" in table
    broken = next(line for line in table if line.startswith("| broken_bench |"))
    assert "failed (exit 3): ValueError: no database" in broken
    assert "| slow_bench | timed out after 5 s | runs to completion | --quick |" in table
    assert all(line.count("|") == 5 for line in table)


def test_names_pick_benchmarks(run_all: ModuleType, tmp_path: Path) -> None:
    for name in ("audit", "policy", "policy_engine"):
        _bench(tmp_path, name, "pass")
    assert [s.stem for s in run_all.discover(tmp_path, ["policy"])] == [
        "policy_bench",
        "policy_engine_bench",
    ]
