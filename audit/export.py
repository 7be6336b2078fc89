"""The exported bundle: one file that carries a whole log to another machine.

A bundle is JSON lines (gzip-compressed when its name ends in ``.gz``): a header line,
one line per signed checkpoint, then one line per entry in index order with its leaf
exactly as hashed, its stored leaf hash, its private values and its erasure record.
Nothing in it is trusted by the verifier except through the log's public key, which
the officer obtains separately; the key in the header is there to compare against.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from audit._chunks import Chunk
from audit._dbsource import DatabaseSource
from audit._misstored import misstored_erasure, misstored_note, stored_as, wrong_types
from audit._newfile import new_file
from audit._report import Finding, TamperKind
from audit.errors import AuditError, EntryNotFound, LogDamaged
from audit.merkle import NodeId, leaf_hash, subtree_levels
from audit.store import Store

__all__ = ["BundleError", "BundleSource", "ExportSummary", "export_bundle"]

FORMAT = "junction-audit-bundle"
VERSION = 1


class BundleError(AuditError):
    """The file is not a readable Junction audit bundle."""

    code = "audit-bundle-invalid"
    title = "Invalid audit bundle"
    status = 422


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What went into a bundle."""

    entries: int
    checkpoints: int
    path: Path


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


@contextmanager
def _compressed(stream: IO[bytes], path: Path) -> Iterator[IO[bytes]]:
    """``stream``, gzip-compressed if ``path`` ends in ``.gz``."""
    if path.suffix != ".gz":
        yield stream
        return
    # Named after the bundle, not the temporary file it is written to.
    with gzip.GzipFile(filename=path.name, mode="wb", fileobj=stream) as packed:
        yield packed  # type: ignore[misc]


def export_bundle(
    store: Store,
    path: Path,
    *,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the whole log at ``store`` to ``path``, which appears only once complete.

    An existing file is replaced only if ``replace``, and never one of the log's own
    database files. Raises ``OutputError`` for a file that may not or cannot be
    written, ``StoreError`` if the log cannot be read; either leaves ``path`` as it was.
    """
    with (
        new_file(path, replace=replace, protected=store.database_files()) as stream,
        _compressed(stream, path) as out,
    ):
        return _write_bundle(store, out, path, progress)


_ERASURE_TYPES = (("erased_at_us", int), ("erased_by", str), ("reason", str))


def _erasures(rows: DatabaseSource) -> dict[int, dict[str, object]]:
    """Each erasure record as the bundle carries it, by erased entry. Raises
    ``LogDamaged`` for one that holds a value of another type than the log writes."""
    records = {}
    for erased, at_us, by, reason, erasure in rows.erasure_records():
        for (column, kind), value in zip(_ERASURE_TYPES, (at_us, by, reason), strict=True):
            if type(value) is not kind:
                detail = (
                    f"the erasure record of entry {erased} holds {stored_as(value)} as its {column}"
                )
                raise LogDamaged(Finding(TamperKind.ERASURE_UNLOGGED, detail, erased))
        misstored = misstored_erasure(erased, erasure)
        if misstored is not None:
            raise LogDamaged(misstored)
        records[erased] = {"by": by, "at_us": at_us, "reason": reason, "entry": erasure}
    return records


def _text(index: int, leaf: bytes) -> str:
    """The leaf as the bundle carries it, as text. Raises ``LogDamaged`` if it is not
    UTF-8, as a leaf (canonical JSON) always is."""
    try:
        return leaf.decode()
    except UnicodeDecodeError:
        detail = f"entry {index} is not UTF-8 text, so not a Junction leaf"
        raise LogDamaged(Finding(TamperKind.MALFORMED_LEAF, detail, index)) from None


def _write_bundle(
    store: Store, out: IO[bytes], path: Path, progress: Callable[[int], None] | None
) -> ExportSummary:
    """The bundle of the log in ``store``, written to ``out``. A bundle carries each
    value as the log writes it, so a value of another type stops the export: raises
    ``LogDamaged``, naming it as the verifier would."""
    rows = DatabaseSource(store)
    checkpoints = rows.checkpoints()
    for size, note in checkpoints:
        misstored = misstored_note(size, note)
        if misstored is not None:
            raise LogDamaged(misstored)
    erasures = _erasures(rows)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "origin": store.get_meta("origin"),
        "log_key": store.get_meta("log_key"),
        "exported_at": datetime.now(UTC).isoformat(),
    }
    count = 0
    out.write(orjson.dumps(header) + b"\n")
    for size, note in checkpoints:
        out.write(orjson.dumps({"checkpoint": note, "size": size}) + b"\n")
    for chunk in rows.chunks(1 << 14):
        wrong = wrong_types(chunk)
        if wrong:
            raise LogDamaged(wrong[0])
        lines = []
        private: dict[int, list[list[str]]] = {}
        for index, name, salt, value in chunk.openings:
            private.setdefault(index, []).append([name, salt.hex(), value])
        for index, leaf, hash_ in zip(chunk.indexes, chunk.leaves, chunk.hashes, strict=True):
            line: dict[str, Any] = {"i": index, "leaf": _text(index, leaf), "hash": hash_.hex()}
            if index in private:
                line["private"] = private[index]
            if index in erasures:
                line["erased"] = erasures[index]
            lines.append(orjson.dumps(line))
        out.write(b"\n".join(lines) + b"\n")
        count += len(lines)
        if progress is not None:
            progress(count)
    return ExportSummary(count, len(checkpoints), path)


class BundleSource:
    """A ``verify.Source`` over a bundle file, read as a stream.

    The file must be as ``export_bundle`` writes it: the header, then checkpoint lines,
    then entry lines, each member of its type. Anything else (a line of another kind or
    out of place, an index or size that is not a whole number, a missing member) is a
    ``BundleError`` naming the line, never read as something else or skipped.
    """

    read_nodes = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._checkpoints: list[tuple[int, str]] = []
        self._first_entry = 0
        try:
            with _open(path) as handle:
                self.header = self._parse(handle.readline(), 1)
                for number, raw in enumerate(handle, start=2):
                    line = self._parse(raw, number)
                    if "i" in line:
                        self._first_entry = number
                        break
                    self._checkpoints.append(self._checkpoint(line, number))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BundleError(f"cannot read bundle {path}: {exc}") from None
        if self.header.get("format") != FORMAT or self.header.get("version") != VERSION:
            raise BundleError(f"{path} is not a version {VERSION} Junction audit bundle")

    @property
    def origin(self) -> str:
        return str(self.header.get("origin") or "")

    def _parse(self, raw: bytes, number: int) -> dict[str, Any]:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BundleError(f"{self.path} line {number} is not JSON") from None
        if not isinstance(value, dict):
            raise BundleError(f"{self.path} line {number} is not a JSON object")
        return value

    def _malformed(self, number: int, what: str) -> BundleError:
        return BundleError(f"{self.path} line {number} is not as export writes it: {what}")

    def _checkpoint(self, line: dict[str, Any], number: int) -> tuple[int, str]:
        size, note = line.get("size"), line.get("checkpoint")
        if set(line) != {"checkpoint", "size"}:
            raise self._malformed(number, "a checkpoint line holds its size and note only")
        if type(size) is not int or type(note) is not str:
            raise self._malformed(number, "a checkpoint's size is a whole number, its note text")
        return size, note

    def checkpoints(self) -> list[tuple[int, str]]:
        return list(self._checkpoints)

    def entry_lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every entry line of the bundle with its line number, in file order."""
        if not self._first_entry:
            return
        try:
            with _open(self.path) as handle:
                for number, raw in enumerate(handle, start=1):
                    if number < self._first_entry:
                        continue
                    line = self._parse(raw, number)
                    if type(line.get("i")) is not int:
                        what = (
                            "after the first entry, every line is an entry whose index is a"
                            " whole number"
                        )
                        raise self._malformed(number, what)
                    yield number, line
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BundleError(f"cannot read bundle {self.path}: {exc}") from None

    def _entry(
        self, line: dict[str, Any], number: int
    ) -> tuple[bytes, bytes, list[tuple[int, str, bytes, str]], int | None]:
        """An entry line's leaf, leaf hash, private values and erasure entry, if any."""
        index = line["i"]

        def malformed() -> BundleError:
            what = f"entry {index} lacks a member, or holds one of another type"
            return self._malformed(number, what)

        try:
            # Only text has encode(), only text is read by fromhex().
            leaf, hash_ = line["leaf"].encode(), bytes.fromhex(line["hash"])
            openings = [
                (index, name, bytes.fromhex(salt), value)
                for name, salt, value in line.get("private", [])
            ]
            erasure = line["erased"]["entry"] if "erased" in line else None
        except (KeyError, ValueError, TypeError, AttributeError):
            raise malformed() from None
        if any(type(name) is not str or type(value) is not str for _, name, _, value in openings):
            raise malformed()
        if "erased" in line and type(erasure) is not int:
            raise malformed()
        return leaf, hash_, openings, erasure

    def entry(self, index: int) -> tuple[bytes, dict[str, Any] | None]:
        """The leaf of entry ``index`` and its erasure record, if any. Raises
        ``EntryNotFound``, or ``BundleError`` for a line not as export writes it."""
        for number, line in self.entry_lines():
            if line["i"] == index:
                return self._entry(line, number)[0], line.get("erased")
        raise EntryNotFound(f"the bundle has no entry {index}")

    def chunks(self, size: int) -> Generator[Chunk]:
        chunk = Chunk([], [], [], [], {})
        for number, line in self.entry_lines():
            leaf, hash_, openings, erasure = self._entry(line, number)
            index = line["i"]
            chunk.indexes.append(index)
            chunk.leaves.append(leaf)
            chunk.hashes.append(hash_)
            chunk.openings.extend(openings)
            if erasure is not None:
                chunk.erasures[index] = erasure
            if len(chunk.indexes) == size:
                yield chunk
                chunk = Chunk([], [], [], [], {})
        if chunk.indexes:
            yield chunk

    def tree(self) -> tuple[list[bytes], Callable[[Sequence[NodeId]], Mapping[NodeId, bytes]]]:
        """Leaf hashes recomputed from the leaves, and a node reader over the whole tree.

        Holds every node in memory (about 150 MB per million entries); for proofs.
        """
        hashes: list[bytes] = []
        for chunk in self.chunks(1 << 14):
            hashes.extend(map(leaf_hash, chunk.leaves))
        levels = subtree_levels(hashes)

        def read(ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
            return {
                (lv, i): levels[lv][i] for lv, i in ids if lv < len(levels) and i < len(levels[lv])
            }

        return hashes, read
