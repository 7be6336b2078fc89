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
from audit.errors import AuditError, LogDamaged
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
    """A ``verify.Source`` over a bundle file, read as a stream."""

    read_nodes = None

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with _open(path) as handle:
                self.header = self._parse(handle.readline(), 1)
                self._checkpoints = []
                for number, raw in enumerate(handle, start=2):
                    line = self._parse(raw, number)
                    if "checkpoint" not in line:
                        break
                    self._checkpoints.append((int(line["size"]), str(line["checkpoint"])))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BundleError(f"cannot read bundle {path}: {exc}") from None
        except (KeyError, ValueError, TypeError):
            raise BundleError(f"{path} has a malformed checkpoint line") from None
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

    def checkpoints(self) -> list[tuple[int, str]]:
        return list(self._checkpoints)

    def entry_lines(self) -> Iterator[dict[str, Any]]:
        """Every entry line of the bundle, in file order."""
        try:
            with _open(self.path) as handle:
                for number, raw in enumerate(handle, start=1):
                    line = self._parse(raw, number)
                    if "i" in line:
                        yield line
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise BundleError(f"cannot read bundle {self.path}: {exc}") from None

    def chunks(self, size: int) -> Generator[Chunk]:
        chunk = Chunk([], [], [], [], {})
        for line in self.entry_lines():
            try:
                index = int(line["i"])
                chunk.indexes.append(index)
                chunk.leaves.append(str(line["leaf"]).encode())
                chunk.hashes.append(bytes.fromhex(line["hash"]))
                chunk.openings.extend(
                    (index, str(n), bytes.fromhex(salt), str(v))
                    for n, salt, v in line.get("private", ())
                )
                if "erased" in line:
                    chunk.erasures[index] = int(line["erased"]["entry"])
            except (KeyError, ValueError, TypeError):
                raise BundleError(
                    f"{self.path}: entry line {line.get('i')!r} is malformed"
                ) from None
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
