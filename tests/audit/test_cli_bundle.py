"""``junction audit`` reading a bundle: exactly what ``export`` writes, each line in its
place and each member of its type; anything else named by its line, never read as
something else or skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit.cli_log import LogOnDisk, one_line, run, write_log

# The export of a log of 30 entries with 3 checkpoints: the header on line 1, the
# checkpoints of 10, 20 and 30 entries on lines 2 to 4, entry N on line N + 5.
FIRST_ENTRY = 5


@pytest.fixture
def log(tmp_path: Path) -> LogOnDisk:
    return write_log(tmp_path / "log")


@pytest.fixture
def lines(log: LogOnDisk, tmp_path: Path) -> list[str]:
    bundle = tmp_path / "exported.jsonl"
    assert run("export", "--db", log.url, "--out", str(bundle))[0] == 0
    return bundle.read_text().splitlines()


def _bundle(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _changed(line: str, **members: object) -> str:
    return json.dumps(json.loads(line) | members)


def _verify(bundle: Path, log: LogOnDisk, *more: str) -> tuple[int, str]:
    return run("verify", "--bundle", str(bundle), "--public-key", str(log.public_key), *more)


@pytest.mark.parametrize("index", ["1", 1.5, True])
def test_an_entry_index_that_is_not_a_whole_number_is_refused(
    log: LogOnDisk, lines: list[str], tmp_path: Path, index: object
) -> None:
    at = FIRST_ENTRY + 1
    lines[at - 1] = _changed(lines[at - 1], i=index)
    bundle = _bundle(tmp_path, lines)
    expected = (
        f"error: {bundle} line {at} is not as export writes it: after the first entry, every"
        " line is an entry whose index is a whole number"
    )
    code, printed = _verify(bundle, log)
    assert (code, one_line(printed)) == (2, expected)
    code, printed = run(
        "prove", "--index", "1", "--bundle", str(bundle), "--public-key", str(log.public_key)
    )
    assert (code, one_line(printed)) == (2, expected)


def test_a_checkpoint_size_that_is_not_a_whole_number_is_refused(
    log: LogOnDisk, lines: list[str], tmp_path: Path
) -> None:
    lines[2] = _changed(lines[2], size=19.5)
    bundle = _bundle(tmp_path, lines)
    code, printed = _verify(bundle, log)
    assert (code, one_line(printed)) == (
        2,
        f"error: {bundle} line 3 is not as export writes it: a checkpoint's size is a whole"
        " number, its note text",
    )


@pytest.mark.parametrize(
    ("where", "line", "what"),
    [
        (3, "{}", "a checkpoint line holds its size and note only"),
        (
            FIRST_ENTRY + 4,
            "{}",
            "after the first entry, every line is an entry whose index is a whole number",
        ),
        (
            FIRST_ENTRY + 4,
            '{"checkpoint": "x", "size": 3}',
            "after the first entry, every line is an entry whose index is a whole number",
        ),
    ],
)
def test_a_line_out_of_its_place_is_refused(
    log: LogOnDisk, lines: list[str], tmp_path: Path, *, where: int, line: str, what: str
) -> None:
    lines.insert(where - 1, line)
    bundle = _bundle(tmp_path, lines)
    code, printed = _verify(bundle, log)
    assert (code, one_line(printed)) == (
        2,
        f"error: {bundle} line {where} is not as export writes it: {what}",
    )


def test_an_entry_line_that_is_not_as_export_writes_it_is_named_by_its_line(
    log: LogOnDisk, lines: list[str], tmp_path: Path
) -> None:
    at = FIRST_ENTRY + 7
    lines[at - 1] = _changed(lines[at - 1], hash="not hex")
    bundle = _bundle(tmp_path, lines)
    code, printed = _verify(bundle, log)
    assert (code, one_line(printed)) == (
        2,
        f"error: {bundle} line {at} is not as export writes it: entry 7 lacks a member, or"
        " holds one of another type",
    )


def test_entries_swapped_in_the_file_are_reported_as_reordered(
    log: LogOnDisk, lines: list[str], tmp_path: Path
) -> None:
    one, two = FIRST_ENTRY + 1, FIRST_ENTRY + 2
    lines[one - 1], lines[two - 1] = lines[two - 1], lines[one - 1]
    code, printed = _verify(_bundle(tmp_path, lines), log)
    assert code == 1, printed
    assert (
        "TAMPERED: entries_reordered at entry 1: entry 2 is stored before entry 1: entries"
        " were moved"
    ) in one_line(printed)


def test_a_bundle_of_its_header_alone_says_nothing_was_checked(
    log: LogOnDisk, lines: list[str], tmp_path: Path
) -> None:
    code, printed = _verify(_bundle(tmp_path, lines[:1]), log)
    assert code == 0, printed
    assert one_line(printed).endswith(
        "nothing was checked against the log key: the log holds no entry and no signed"
        " checkpoint (a new log, or one stripped of them)"
    )
