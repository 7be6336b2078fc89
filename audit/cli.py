"""``junction audit``: verify, export, prove and check consistency, offline.

Exit codes: 0 when everything checked out, 1 when the log (or a proof) failed a check,
2 when the command could not run (bad arguments, unreadable file or database).
"""

from __future__ import annotations

import base64
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from sqlalchemy import exc as sa_exc

from audit import merkle
from audit._dbsource import DatabaseSource
from audit._misstored import misstored_erasure, misstored_leaf, misstored_note, stored_as
from audit._newfile import new_file
from audit.checkpoint import Checkpoint, NoteVerifier, kept_note, open_checkpoint
from audit.entry import parse_leaf
from audit.errors import (
    AuditError,
    CheckpointError,
    CheckpointFormatError,
    EntryNotFound,
    LogDamaged,
    ProofError,
)
from audit.export import BundleSource, export_bundle
from audit.store import Store
from audit.verify import UNSIGNED_WINDOW, Finding, Report, Source, verify_source

__all__ = ["app"]

app = typer.Typer(
    help="Verify and prove Junction's signed audit log, from its database or an export.",
    no_args_is_help=True,
)
# Lines are not wrapped to a width: a script reading the report splits it on newlines.
_out = Console(highlight=False, soft_wrap=True)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL of the log, e.g. sqlite:///var/audit.db.")
]
BundleOption = Annotated[
    Path | None, typer.Option("--bundle", help="A bundle written by `junction audit export`.")
]
KeyOption = Annotated[
    Path,
    typer.Option(
        "--public-key", help="The log's public key: a PEM file or a verifier key string file."
    ),
]
OriginOption = Annotated[
    str | None, typer.Option("--origin", help="The log's origin; read from the log if omitted.")
]
MaxUnsignedSpanOption = Annotated[
    str,
    typer.Option(
        "--max-unsigned-span",
        metavar="<seconds>",
        help="How many seconds apart (by their own times) the entries that no signed"
        " checkpoint covers may have been written; over that, verify reports"
        " checkpoint_missing.",
    ),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    # One line, whatever a driver's message holds (PostgreSQL's add a hint line).
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    typer.echo(f"error: {line}", err=True)
    return typer.Exit(code)


def _tampered(finding: Finding) -> None:
    where = (
        f"entry {finding.index}" if finding.index is not None else f"checkpoint {finding.tree_size}"
    )
    _out.print(f"[bold red]TAMPERED[/]: {finding.kind.value} at {where}: {finding.detail}")


@contextmanager
def _errors(task: str = "go on") -> Iterator[None]:
    """Every error as one ``error:`` line; damage to the log found on the way, which
    stops ``task``, as a finding first (exit status 1)."""
    try:
        yield
    except LogDamaged as exc:
        _tampered(exc.finding)
        raise _fail(f"cannot {task}: the log is damaged (see above)", 1) from None
    except AuditError as exc:
        raise _fail(exc.detail) from None
    except OSError as exc:
        raise _fail(f"{exc.filename or 'file'}: {exc.strerror}") from None
    except sa_exc.DBAPIError as exc:  # e.g. a file that is not a SQLite database
        reason = str(exc.orig).splitlines()[0] if exc.orig else "unknown error"
        raise _fail(f"cannot read the log's database: {reason}") from None


class _Log(ABC):
    """The log being examined: its origin, and where its entries are read from."""

    origin: str
    origin_from = "--origin"
    """What named the origin, for a message about it."""
    source: Source

    @staticmethod
    def open(db: str | None, bundle: Path | None, origin: str | None) -> _Log:
        """The log named on the command line; exits with a usage error otherwise."""
        if (db is None) == (bundle is None):
            raise _fail("give exactly one of --db URL or --bundle FILE")
        log = _BundleLog(BundleSource(bundle), origin) if bundle else _DbLog(_store(db), origin)
        if not log.origin:
            raise _fail("the log does not name its origin; pass --origin")
        if origin is None:
            log.origin_from = "the origin the log names (pass --origin for another)"
        return log

    def checkpoints(self) -> Sequence[tuple[int, object]]:
        return self.source.checkpoints()

    def total(self) -> int | None:
        """How many entries there are, when that is known without reading them all."""
        return None

    @abstractmethod
    def tree(self) -> merkle.NodeReader:
        """A reader of the tree's nodes."""

    @abstractmethod
    def leaf(self, index: int) -> tuple[bytes, Mapping[str, object] | None]:
        """The leaf bytes of entry ``index`` and its erasure record, if any."""


class _DbLog(_Log):
    def __init__(self, store: Store, origin: str | None) -> None:
        self.store = store
        self.origin = origin or store.get_meta("origin") or ""
        self.source = self.rows = DatabaseSource(store)

    def total(self) -> int | None:
        return self.store.size()

    def tree(self) -> merkle.NodeReader:
        return self.store.read_nodes

    def leaf(self, index: int) -> tuple[bytes, Mapping[str, object] | None]:
        """Raises ``LogDamaged`` for a leaf or an erasure record of the wrong type."""
        row = self.rows.entry(index)
        if row is None:
            raise EntryNotFound(f"the log has no entry {index}")
        leaf, erased_by, erasure_index = row
        misstored = misstored_leaf(index, leaf)
        if misstored is None and erasure_index is not None:
            misstored = misstored_erasure(index, erasure_index)
        if misstored is not None:
            raise LogDamaged(misstored)
        assert isinstance(leaf, bytes)  # noqa: S101 - misstored_leaf makes sure
        if erasure_index is None:
            return leaf, None
        # Who erased it is for the reader; the erasure entry itself is what verify checks.
        by = erased_by if isinstance(erased_by, str) else f"(stored as {stored_as(erased_by)})"
        return leaf, {"by": by, "entry": erasure_index}


class _BundleLog(_Log):
    def __init__(self, bundle: BundleSource, origin: str | None) -> None:
        self.bundle = bundle
        self.origin = origin or bundle.origin
        self.source = bundle

    def tree(self) -> merkle.NodeReader:
        # Recomputed from the bundle's own leaves: a bundle carries no tree.
        return self.bundle.tree()[1]

    def leaf(self, index: int) -> tuple[bytes, Mapping[str, object] | None]:
        return self.bundle.entry(index)


def _store(db: str | None) -> Store:
    if db is None:
        raise _fail("give --db URL")
    return Store.open_read_only(db)


def _verifier(path: Path, log: _Log) -> NoteVerifier:
    """The log key in the file ``path``, under the log's origin."""
    text = path.read_text(errors="replace")
    if not text.strip():
        raise _fail(f"{path} is empty: give the log's public key (a PEM file, or its verifier key)")
    origin = log.origin
    if "-----BEGIN" in text:
        try:
            return NoteVerifier.from_pem(path, origin)
        except CheckpointFormatError as exc:  # the origin cannot name a key
            raise _fail(f"{log.origin_from}: {exc.detail}") from None
    try:
        verifier = NoteVerifier.from_verifier_key(text)
    except CheckpointFormatError:
        # Not its text: a key file may hold what should not be shown.
        raise _fail(
            f"{path} is not a public key: neither a PEM file nor a verifier key"
            " (origin+hash+base64 key)"
        ) from None
    if verifier.name != origin:
        raise _fail(f"the key is for log {verifier.name!r}, not {origin!r}")
    return verifier


def _entry_index(text: str) -> int:
    """An entry's index given on the command line: a whole number, 0 or more."""
    if not re.fullmatch("[0-9]+", text):
        raise _fail(f"--index: {text!r} is not an entry index (a whole number, 0 or more)")
    return int(text)


def _seconds(text: str, option: str, default: float) -> float:
    """A span given on the command line: a number of seconds, 0 or more."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:  # also refuses nan
        raise _fail(
            f"{option}: {text!r} is not a number of seconds, 0 or more (the default is {default:g})"
        )
    return seconds


def _latest(log: _Log, verifier: NoteVerifier) -> tuple[Checkpoint, str]:
    """The log's latest checkpoint, opened with the key, and its note."""
    checkpoints = log.checkpoints()
    if not checkpoints:
        raise _fail("the log has no signed checkpoint yet", 1)
    size, note = checkpoints[-1]
    misstored = misstored_note(size, note)
    if misstored is not None:
        raise _fail(f"the log's latest checkpoint does not verify: {misstored.detail}", 1)
    assert isinstance(note, str)  # noqa: S101 - misstored_note makes sure
    try:
        return open_checkpoint(note, verifier, origin=log.origin), note
    except CheckpointError as exc:
        raise _fail(f"the log's latest checkpoint does not verify: {exc.detail}", 1) from None


def _summary(report: Report) -> str:
    rate = report.entries / report.seconds if report.seconds else 0.0
    return (
        f"{report.entries} entries, {report.checkpoints} checkpoints (the latest that"
        f" verified signs {report.signed_size} entries), {report.erased} erased;"
        f" {report.seconds:.2f} s, {rate:,.0f} entries/s"
    )


def _print_findings(report: Report) -> None:
    first = report.first
    assert first is not None  # noqa: S101 - only for a report that is not ok
    _tampered(first)
    for finding in report.findings[:20]:
        if finding is not first:
            _out.print(f"  also {finding.kind.value}: {finding.detail}")
    _out.print(f"checked: {_summary(report)}")


def _unsigned_line(report: Report) -> str:
    """Which entries no signed checkpoint covers yet, and when they say they were written."""
    first, last = report.signed_size, report.entries - 1
    which = f"entry {first} is" if first == last else f"entries {first} to {last} are"
    when = ""
    if report.unsigned_times is not None:
        written = sorted(
            {
                datetime.fromtimestamp(t / 1_000_000, UTC).strftime("%Y-%m-%d %H:%M:%S")
                for t in report.unsigned_times
            }
        )
        when = f" (written {' to '.join(written)} UTC)"
    return (
        f"{which} not covered by a signed checkpoint{when}; a live log signs them within seconds."
    )


def _print_report(report: Report) -> None:
    if report.ok:
        _out.print(f"[bold green]OK[/]: {_summary(report)}")
        if report.unsigned:
            _out.print(_unsigned_line(report))
        if not report.entries and not report.checkpoints:
            _out.print(
                "nothing was checked against the log key: the log holds no entry and no"
                " signed checkpoint (a new log, or one stripped of them)"
            )
        return
    _print_findings(report)


def _verify(
    log: _Log,
    verifier: NoteVerifier,
    kept: Checkpoint | None = None,
    max_unsigned_span: float = UNSIGNED_WINDOW,
) -> Report:
    """Verify the whole log, with a progress bar while it reads."""
    columns = (TextColumn("verifying"), BarColumn(), TextColumn("{task.completed} entries"))
    with _progress(*columns, TimeElapsedColumn()) as progress:
        task = progress.add_task("verify", total=log.total())
        return verify_source(
            log.source,
            verifier,
            log.origin,
            kept=kept,
            progress=lambda done: progress.update(task, completed=done),
            max_unsigned_span=max_unsigned_span,
        )


@app.command()
def verify(
    public_key: KeyOption,
    db: DbOption = None,
    bundle: BundleOption = None,
    origin: OriginOption = None,
    max_unsigned_span: MaxUnsignedSpanOption = f"{UNSIGNED_WINDOW:g}",
) -> None:
    """Recompute every leaf hash and the tree; check every checkpoint and erasure."""
    window = _seconds(max_unsigned_span, "--max-unsigned-span", UNSIGNED_WINDOW)
    with _errors():
        log = _Log.open(db, bundle, origin)
        verifier = _verifier(public_key, log)
        report = _verify(log, verifier, max_unsigned_span=window)
    _out.print(f"log {log.origin}, trusted log key hash {verifier.key_hash.hex()}")
    _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


ForceOption = Annotated[
    bool, typer.Option("--force", help="Replace the --out file if there is one already.")
]


def _progress(*columns: str | ProgressColumn) -> Progress:
    """A progress bar on a terminal's standard error, gone when the work is; none when
    the output goes to a file or a pipe, which then gets the report alone."""
    errors = Console(stderr=True)
    return Progress(*columns, console=errors, transient=True, disable=not errors.is_terminal)


@app.command()
def export(
    db: Annotated[str, typer.Option("--db", help="Database URL of the log.")],
    out: Annotated[Path, typer.Option("--out", help="File to write (.jsonl or .jsonl.gz).")],
    force: ForceOption = False,
) -> None:
    """Write the whole log (entries, checkpoints, log key) to one file to carry away."""
    with _errors("export the log"):
        store = Store.open_read_only(db)
        with _progress() as progress:
            task = progress.add_task("exporting", total=store.size())
            summary = export_bundle(
                store, out, replace=force, progress=lambda n: progress.update(task, completed=n)
            )
    _out.print(f"exported {summary.entries} entries and {summary.checkpoints} checkpoints to {out}")


@app.command()
def checkpoint(
    db: Annotated[str, typer.Option("--db", help="Database URL of the log.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also save it to this file.")] = None,
    force: ForceOption = False,
) -> None:
    """Print the latest signed checkpoint, to keep for a later consistency check."""
    with _errors("give the latest checkpoint"):
        store = Store.open_read_only(db)
        checkpoints = DatabaseSource(store).checkpoints()
        if not checkpoints:
            raise _fail("the log has no signed checkpoint yet", 1)
        size, note = checkpoints[-1]
        misstored = misstored_note(size, note)
        if misstored is not None:
            raise LogDamaged(misstored)
        assert isinstance(note, str)  # noqa: S101 - misstored_note makes sure
        if out is not None:
            with new_file(out, replace=force, protected=store.database_files()) as kept:
                kept.write(note.encode())
    typer.echo(note, nl=False)


def _hex(hashes: Sequence[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


@app.command()
def prove(
    *,
    index: Annotated[
        str, typer.Option("--index", metavar="<entry>", help="Index of the entry to prove.")
    ],
    public_key: KeyOption,
    db: DbOption = None,
    bundle: BundleOption = None,
    origin: OriginOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the receipt as JSON.")] = False,
) -> None:
    """Prove that entry N is in the latest signed checkpoint (an inclusion proof)."""
    at = _entry_index(index)
    with _errors(f"prove entry {at}"):
        log = _Log.open(db, bundle, origin)
        verifier = _verifier(public_key, log)
        signed, note = _latest(log, verifier)
        if not 0 <= at < signed.size:
            raise _fail(f"entry {at} is not covered by the latest checkpoint ({signed.size})", 1)
        leaf, erased = log.leaf(at)
        read = log.tree()
        leaf_hash = merkle.leaf_hash(leaf)
        proof = merkle.inclusion_proof(at, signed.size, read)
        try:
            merkle.verify_inclusion(leaf_hash, at, signed.size, proof, signed.root_hash)
        except ProofError as exc:
            raise _fail(f"entry {at} is NOT in the signed tree: {exc.detail}", 1) from None
    _, fields = parse_leaf(leaf)
    receipt = {
        "index": at,
        "entry": fields,
        "erased": erased,
        # The leaf exactly as hashed, so the proof can be checked without trusting this
        # program's reading of it: leaf_hash is SHA-256(0x00 || leaf) (RFC 9162 §2.1.1).
        "leaf": leaf.decode(errors="replace"),
        "leaf_base64": base64.b64encode(leaf).decode(),
        "leaf_hash": leaf_hash.hex(),
        "tree_size": signed.size,
        "root_hash": base64.b64encode(signed.root_hash).decode(),
        "inclusion_proof": _hex(proof),
        "checkpoint": note,
    }
    if as_json:
        typer.echo(orjson.dumps(receipt, option=orjson.OPT_INDENT_2).decode())
        return
    _out.print_json(orjson.dumps(fields).decode())
    if erased:
        _out.print(f"erased by {erased.get('by')} (erasure entry {erased.get('entry')})")
    _out.print(f"proof: {len(proof)} hashes, " + " ".join(h[:12] for h in _hex(proof)))
    _out.print(
        f"[bold green]OK[/]: entry {at} is in the tree of {signed.size} entries signed by"
        f" {verifier.name} (log key hash {verifier.key_hash.hex()})"
    )


def _check_proof(kept: Checkpoint, report: Report) -> None:
    """Check the proof the verifier built, from your checkpoint to the newest one."""
    if report.proof is None:
        raise ProofError("the entries do not give the whole consistency proof")
    if kept.size:  # every tree extends the empty one
        newest = report.roots[report.signed_size]
        merkle.verify_consistency(
            kept.size, report.signed_size, kept.root_hash, newest, report.proof
        )


@app.command()
def consistency(
    *,
    old: Annotated[Path, typer.Option("--old", help="A checkpoint file you kept earlier.")],
    public_key: KeyOption,
    db: DbOption = None,
    bundle: BundleOption = None,
    origin: OriginOption = None,
    max_unsigned_span: MaxUnsignedSpanOption = f"{UNSIGNED_WINDOW:g}",
) -> None:
    """Prove that the log only grew since a checkpoint you kept (no rewrite, no fork)."""
    window = _seconds(max_unsigned_span, "--max-unsigned-span", UNSIGNED_WINDOW)
    with _errors():
        log = _Log.open(db, bundle, origin)
        verifier = _verifier(public_key, log)
        try:
            kept = open_checkpoint(
                kept_note(old.read_text(errors="replace")), verifier, origin=log.origin
            )
        except CheckpointFormatError as exc:
            raise _fail(f"{old} is not a checkpoint of log {log.origin}: {exc.detail}") from None
        except CheckpointError as exc:
            raise _fail(f"your checkpoint does not verify with this key: {exc.detail}", 1) from None
        signed, _ = _latest(log, verifier)
        if kept.size > signed.size:
            raise _fail(
                f"the log signs {signed.size} entries, fewer than the {kept.size} your"
                " checkpoint signs: it was truncated or rolled back",
                1,
            )
        # The stored tree and leaf hashes could have been rewritten to match changed
        # entries: the proof is built from the entries themselves, as verify does.
        report = _verify(log, verifier, kept, max_unsigned_span=window)
    if report.ok:
        try:
            _check_proof(kept, report)
        except ProofError as exc:
            raise _fail(
                f"the log does NOT extend your checkpoint of size {kept.size}: {exc.detail}", 1
            ) from None
        assert report.proof is not None  # noqa: S101 - _check_proof makes sure
        _out.print(
            f"[bold green]OK[/]: the log of {report.signed_size} entries extends your"
            f" checkpoint of {kept.size} entries ({len(report.proof)}-hash consistency proof"
            " verified, every entry recomputed)"
        )
        return
    _print_findings(report)
    if report.roots.get(kept.size) == kept.root_hash:
        raise _fail(
            f"the first {kept.size} entries still match your checkpoint, but the log did not"
            " verify after them (see above)",
            1,
        )
    raise _fail(f"the log does NOT extend your checkpoint of size {kept.size} (see above)", 1)
