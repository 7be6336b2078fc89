"""Checkpoints in the C2SP formats: tlog-checkpoint bodies inside signed notes.

A checkpoint body is three lines, ``<origin>``, ``<tree size>``, ``<base64 root hash>``,
then optional extension lines, each ending in a newline (c2sp.org/tlog-checkpoint).
The signed note (c2sp.org/signed-note) is the body, a blank line, and one line per
signature: ``— <key name> <base64(key hash || signature)>``. For Ed25519 the key hash is
the first four bytes of SHA-256(key name || 0x0A || 0x01 || public key). Signatures by
keys the verifier does not know are ignored, so a connector or an auditor can cosign a
checkpoint and anyone else can still check the log's own signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.errors import (
    CheckpointFormatError,
    CheckpointSignatureError,
    CheckpointUnknownSigner,
)
from audit.merkle import HASH_SIZE

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "cosign",
    "kept_note",
    "open_checkpoint",
    "sign_checkpoint",
]

_DASH = "\u2014 "
_ED25519 = b"\x01"
_MAX_SIGNATURES = 100


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise CheckpointFormatError(f"key name {name!r} must be non-empty, no spaces or '+'")
    return name


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + _raw(public_key)).digest()[:4]


def _read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CheckpointSignatureError(f"cannot read key file {path}: {exc.strerror}") from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's origin, its size, and the root hash at that size."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        """The checkpoint text that is signed."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 public key under a key name, which checks signed-note signatures."""

    name: str
    public_key: Ed25519PublicKey

    @property
    def key_hash(self) -> bytes:
        """The signed-note key hash: how every checkpoint, the verifier key string and
        ``junction audit`` name this key (``junction keys show --origin`` prints it)."""
        return _key_hash(self.name, self.public_key)

    @classmethod
    def from_public_key(cls, name: str, public_key: Ed25519PublicKey) -> NoteVerifier:
        """The verifier of ``public_key`` under key name ``name`` (the log's origin).

        Raises ``CheckpointFormatError`` for a name a signed note cannot carry.
        """
        return cls(_check_name(name), public_key)

    def verifier_key(self) -> str:
        """The C2SP verifier key string ``name+hexhash+base64(0x01 || key)``."""
        encoded = base64.b64encode(_ED25519 + _raw(self.public_key)).decode()
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"

    @classmethod
    def from_verifier_key(cls, text: str) -> NoteVerifier:
        """Parse a ``name+hexhash+base64key`` string. Raises ``CheckpointFormatError``."""
        name, _, rest = text.strip().partition("+")
        key_hash, _, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
            verifier = cls(_check_name(name), Ed25519PublicKey.from_public_bytes(raw[1:]))
        except (binascii.Error, ValueError):
            raise CheckpointFormatError("not a verifier key (name+hash+base64 key)") from None
        if raw[:1] != _ED25519 or verifier.key_hash.hex() != key_hash:
            raise CheckpointFormatError("the verifier key's hash or algorithm does not match")
        return verifier

    @classmethod
    def from_pem(cls, path: Path, name: str) -> NoteVerifier:
        """Load a PEM public (or private) key file. Raises ``CheckpointSignatureError``."""
        data = _read_pem(path)
        if b"PRIVATE KEY" in data:
            return NoteSigner.from_pem(path, name).verifier()
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise CheckpointSignatureError(f"{path} is not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise CheckpointSignatureError(f"{path} is not an Ed25519 key")
        return cls(_check_name(name), key)


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 private key under a key name, which signs notes."""

    name: str
    private_key: Ed25519PrivateKey

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private_key.public_key())

    def signature_line(self, body: str) -> str:
        signature = self.private_key.sign(body.encode())
        encoded = base64.b64encode(self.verifier().key_hash + signature).decode()
        return f"{_DASH}{self.name} {encoded}\n"

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, path: Path, name: str) -> NoteSigner:
        """Load a PKCS#8 PEM private key file. Raises ``CheckpointSignatureError``."""
        try:
            key = serialization.load_pem_private_key(_read_pem(path), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise CheckpointSignatureError(f"{path} is not an unencrypted PEM key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointSignatureError(f"{path} is not an Ed25519 key")
        return cls(_check_name(name), key)


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The signed note of ``checkpoint``, with one signature by ``signer``."""
    body = checkpoint.body()
    return body + "\n" + signer.signature_line(body)


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    body, sep, signatures = note.partition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise CheckpointFormatError("not a signed note: no blank line before signatures")
    body += "\n"
    lines = signatures[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise CheckpointFormatError("too many signatures on the note")
    parsed = []
    for line in lines:
        name, _, encoded = line.removeprefix(_DASH).rpartition(" ")
        if not line.startswith(_DASH) or not name or " " in name:
            raise CheckpointFormatError(f"malformed signature line {line[:60]!r}")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise CheckpointFormatError("a signature is not valid base64") from None
        if len(raw) < 5:
            raise CheckpointFormatError("a signature is too short")
        parsed.append((name, raw))
    return body, parsed


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not lines[0]:
        raise CheckpointFormatError("a checkpoint body needs origin, size and root lines")
    origin, size_text, root_text, *extensions = lines
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointFormatError(f"tree size {size_text[:30]!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise CheckpointFormatError("the root hash is not valid base64") from None
    if len(root) != HASH_SIZE:
        raise CheckpointFormatError(f"the root hash is {len(root)} bytes, not {HASH_SIZE}")
    if any(not line for line in extensions):
        raise CheckpointFormatError("empty extension line in the checkpoint body")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def kept_note(text: str) -> str:
    """A signed note as somebody kept it, in the form ``open_checkpoint`` reads.

    Keeping a note (a file, a terminal, a web form, an e-mail) may change its line
    endings, drop its final newline, or add blank lines or spaces before or after it;
    none of that is signed (a note starts with its origin and ends with a signature), so
    it is undone here. Whatever else changed still fails to open.
    """
    return text.replace("\r\n", "\n").strip() + "\n"


def open_checkpoint(note: str, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """Check ``note``'s signature by ``verifier`` and return the checkpoint it signs.

    Signatures by other keys are ignored. Raises ``CheckpointFormatError`` for text that
    is not a checkpoint note (or names another origin), ``CheckpointUnknownSigner`` if the
    verifier's key did not sign it, ``CheckpointSignatureError`` if its signature is wrong.
    """
    body, signatures = _split(note)
    checkpoint = _parse_body(body)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointFormatError(f"checkpoint of log {checkpoint.origin!r}, not {origin!r}")
    key_hash = verifier.key_hash
    mine = [raw for name, raw in signatures if name == verifier.name and raw[:4] == key_hash]
    if not mine:
        raise CheckpointUnknownSigner(
            f"checkpoint of size {checkpoint.size} is not signed by log key {verifier.name}"
            f" (log key hash {key_hash.hex()})"
        )
    for raw in mine:
        try:
            verifier.public_key.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointSignatureError(
                f"the log key's signature on the checkpoint of size {checkpoint.size} is wrong"
            ) from None
    return checkpoint


def cosign(note: str, signer: NoteSigner) -> str:
    """Add ``signer``'s signature to a signed note (a cosignature by a witness or agency)."""
    body, _ = _split(note)
    _parse_body(body)
    return note + signer.signature_line(body)
