"""A policy bundle: Rego modules, their tests and data documents, read from directories.

Each bundle directory holds ``rego/**/*.rego`` (``*_test.rego`` are the bundle's own
tests) and ``data/**/*.json``. A data file is mounted at the path its location names:
``data/catalogue/purposes.json`` becomes ``data.catalogue.purposes``. Several directories
may be combined (the shipped bundle plus a local one); two files at the same path clash.

The digest names exactly what was loaded: SHA-256 over a sorted listing of every file's
bundle path and the SHA-256 of its bytes, so any change to any rule or datum changes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.errors import BundleError

__all__ = ["Bundle", "load_bundle"]


@dataclass(frozen=True)
class Bundle:
    """The loaded contents of a bundle. ``modules`` and ``tests`` map a path to its source."""

    modules: Mapping[str, str]
    tests: Mapping[str, str]
    data: Mapping[str, Any]
    digest: str
    sources: tuple[Path, ...] = field(default=())

    def all_modules(self) -> dict[str, str]:
        """Policy modules and test modules together, as a test run needs them."""
        return {**self.modules, **self.tests}


def _mount(tree: dict[str, Any], parts: tuple[str, ...], document: Any, where: str) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise BundleError(f"{where} is mounted inside a value that is not an object")
        node = child
    if parts[-1] in node:
        raise BundleError(f"{where} clashes with another data document at the same path")
    node[parts[-1]] = document


def _read_text(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror}") from None


def load_bundle(dirs: Iterable[Path]) -> Bundle:
    """Read every bundle directory into one bundle.

    Raises:
        BundleError: a directory is missing or holds no Rego, a file cannot be read or is
            not UTF-8 / JSON (or nests too deeply to read), or two files land at the same
            bundle path.
    """
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    data: dict[str, Any] = {}
    listing: list[str] = []
    sources = tuple(Path(d) for d in dirs)
    if not sources:
        raise BundleError("no bundle directory was given; name at least one")
    for root in sources:
        if not root.is_dir():
            state = "is a file, not a folder" if root.exists() else "does not exist"
            raise BundleError(f"bundle directory {root} {state}")
        rego_files = sorted((root / "rego").rglob("*.rego"))
        data_files = sorted((root / "data").rglob("*.json"))
        for path in rego_files:
            name = path.relative_to(root).as_posix()
            raw = _read_text(path)
            if name in modules or name in tests:
                raise BundleError(f"{path} clashes with a module of the same path")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BundleError(f"{path} is not UTF-8 text") from None
            (tests if path.name.endswith("_test.rego") else modules)[name] = text
            listing.append(f"{name}\0{hashlib.sha256(raw).hexdigest()}")
        for path in data_files:
            rel = path.relative_to(root / "data").with_suffix("")
            raw = _read_text(path)
            try:
                document = json.loads(raw)
            except ValueError as exc:
                raise BundleError(f"{path} is not valid JSON: {exc}") from None
            except RecursionError:
                raise BundleError(
                    f"{path} nests arrays or objects too deeply to read; a policy data"
                    " document needs only a few levels"
                ) from None
            _mount(data, rel.parts, document, str(path))
            listing.append(f"data/{rel.as_posix()}.json\0{hashlib.sha256(raw).hexdigest()}")
    if not modules:
        raise BundleError(
            "the bundle has no Rego modules; expected rego/*.rego under "
            + ", ".join(str(s) for s in sources)
        )
    digest = hashlib.sha256("\n".join(sorted(listing)).encode("utf-8")).hexdigest()
    return Bundle(
        modules=modules, tests=tests, data=data, digest=f"sha256:{digest}", sources=sources
    )
