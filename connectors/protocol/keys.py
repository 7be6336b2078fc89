"""Ed25519 keys: generation, files, and the key id every signed thing carries.

The key id is the first 16 bytes of SHA-256 over the raw 32-byte public key, in hex. It
is stable, derived only from the public key, and short enough to read aloud.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "KeyFileError",
    "KeyPair",
    "generate_key_files",
    "key_id_for",
    "load_private_key",
    "load_public_key",
    "public_key_from_b64",
    "public_key_to_b64",
]


class KeyFileError(Exception):
    """A key file is missing, unreadable, of the wrong kind, or would be overwritten."""


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """Return the key id of ``public_key``: hex of SHA-256(raw key)[:16]."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:32]


def public_key_to_b64(public_key: Ed25519PublicKey) -> str:
    """Return the raw public key as standard base64 (44 characters)."""
    return base64.b64encode(_raw(public_key)).decode("ascii")


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """Parse a base64 raw Ed25519 public key. Raises ``KeyFileError`` if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise KeyFileError(f"not a base64 Ed25519 public key: {exc}") from None


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private key with its public half and key id, ready to sign with."""

    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def key_id(self) -> str:
        return key_id_for(self.public_key)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)


_KEY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def generate_key_files(out_dir: Path, name: str = "signing", *, force: bool = False) -> KeyPair:
    """Write ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` (PEM) into ``out_dir``.

    Raises ``KeyFileError`` if either file exists and ``force`` is false, or if ``name``
    is not a plain file name (the files go in ``out_dir`` and nowhere else).
    """
    if not _KEY_NAME.fullmatch(name):
        raise KeyFileError(
            f"key name {name!r} must be a plain file name: letters, digits, '.', '_' or '-',"
            " not starting with '.'"
        )
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise KeyFileError(f"{path} already exists; pass --force to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    pair = KeyPair.generate()
    private_pem = pair.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = pair.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if force and private_path.exists():
        private_path.unlink()
    # Create with 0600 from the start so the key is never readable by others, even briefly.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return pair


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None


def load_private_key(path: Path) -> KeyPair:
    """Load an Ed25519 private key from a PEM file. Raises ``KeyFileError``."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return KeyPair(key)


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key from a PEM public or private key file, or base64 text."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        try:
            return public_key_from_b64(data.decode("ascii", "replace").strip())
        except KeyFileError:
            raise KeyFileError(
                f"{path} is neither a PEM public key nor a base64 raw Ed25519 public key"
            ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key
