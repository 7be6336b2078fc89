"""Writing the files the commands produce (a bundle, a kept checkpoint) without losing any.

The content goes to a temporary file beside the target, which takes the target's name
only once it is complete and on disk: a failed or interrupted write leaves whatever was
there before. An existing file is replaced only when the caller says so, and the
database being read never, whatever the caller says: a bundle or a checkpoint written
over it would destroy the log it was made from.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from audit.errors import OutputError

__all__ = ["new_file"]


def _same(path: Path, other: Path) -> bool:
    """Whether two names lead to the same file (or would, once it exists)."""
    try:
        return path.samefile(other)
    except OSError:  # one of them does not exist
        return path.resolve() == other.resolve()


def _refuse(path: Path, *, replace: bool, protected: Iterable[Path]) -> os.stat_result | None:
    """Raise ``OutputError`` if ``path`` may not be written; its status if it exists."""
    if any(_same(path, kept) for kept in protected):
        raise OutputError(f"{path} is the log's own database; write to another file")
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISDIR(status.st_mode):
        raise OutputError(f"{path} is a folder; give the name of a file to write")
    if stat.S_ISREG(status.st_mode) and not replace:
        raise OutputError(f"{path} already exists; pass --force to replace it")
    return status


@contextmanager
def new_file(
    path: Path, *, replace: bool = False, protected: Iterable[Path] = ()
) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only when the block ends without an error.

    An existing regular file is replaced (keeping its permissions) only if ``replace``;
    a device or a pipe (``/dev/stdout``) is written straight into. ``protected`` are
    files that may never be written, such as the database being read.

    Raises ``OutputError`` when ``path`` may not or cannot be written; whatever the
    block raises leaves ``path`` as it was.
    """
    status = _refuse(path, replace=replace, protected=protected)
    if status is not None and not stat.S_ISREG(status.st_mode):
        try:
            with path.open("wb") as stream:
                yield stream
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from None
        return
    target = path.resolve()  # through a symbolic link, to the file it names
    part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            if status is not None:
                part.chmod(stat.S_IMODE(status.st_mode))
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        _rename(part, target, replace=replace)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        part.unlink(missing_ok=True)


def _rename(part: Path, target: Path, *, replace: bool) -> None:
    """Give ``part`` the name ``target``; without ``replace``, only if it is still free."""
    if replace:
        part.replace(target)
    else:
        try:
            # A link fails if the name was taken meanwhile, where a rename would not.
            target.hardlink_to(part)
        except FileExistsError:
            raise OutputError(f"{target} already exists; pass --force to replace it") from None
        except OSError:  # a file system without hard links
            if target.exists():
                raise OutputError(f"{target} already exists; pass --force to replace it") from None
            part.replace(target)
    # The new name is durable once the folder is on disk too; not every system allows it.
    with contextlib.suppress(OSError):
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
