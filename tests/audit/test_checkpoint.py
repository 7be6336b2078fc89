"""C2SP checkpoints and signed notes: format, signatures, cosignatures, key strings."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from audit.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign,
    open_checkpoint,
    sign_checkpoint,
)
from audit.errors import CheckpointFormatError, CheckpointSignatureError, CheckpointUnknownSigner

ROOT = hashlib.sha256(b"root").digest()


def test_signed_note_layout_follows_c2sp() -> None:
    signer = NoteSigner.generate("example.org/log")
    note = sign_checkpoint(Checkpoint("example.org/log", 42, ROOT), signer)
    body, signature_line = note.split("\n\n")
    assert body.split("\n") == ["example.org/log", "42", base64.b64encode(ROOT).decode()]
    dash, name, encoded = signature_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "example.org/log")
    raw = base64.b64decode(encoded)
    public = signer.private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key_hash = hashlib.sha256(b"example.org/log\n\x01" + public).digest()[:4]
    assert raw[:4] == key_hash
    assert len(raw) == 4 + 64
    signer.private_key.public_key().verify(raw[4:], (body + "\n").encode())


def test_open_returns_the_checkpoint_and_ignores_unknown_cosigners() -> None:
    signer = NoteSigner.generate("log")
    note = cosign(
        sign_checkpoint(Checkpoint("log", 7, ROOT, ("ext line",)), signer),
        NoteSigner.generate("witness"),
    )
    assert note.count("\u2014 ") == 2
    checkpoint = open_checkpoint(note, signer.verifier(), origin="log")
    assert checkpoint == Checkpoint("log", 7, ROOT, ("ext line",))


def test_bad_signature_unknown_signer_and_wrong_origin() -> None:
    signer = NoteSigner.generate("log")
    note = sign_checkpoint(Checkpoint("log", 7, ROOT), signer)
    with pytest.raises(CheckpointUnknownSigner):
        open_checkpoint(note, NoteSigner.generate("log").verifier())
    tampered = note.replace("\n7\n", "\n8\n")
    with pytest.raises(CheckpointSignatureError):
        open_checkpoint(tampered, signer.verifier())
    with pytest.raises(CheckpointFormatError, match="not 'other'"):
        open_checkpoint(note, signer.verifier(), origin="other")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "log\n7\n",
        "log\n7\nnot base64!\n\n\u2014 log AAAAAAAA\n",
        "log\n07\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 log AAAAAAAA\n",
        "log\n7\n" + base64.b64encode(b"short").decode() + "\n\n\u2014 log AAAAAAAA\n",
        "log\n7\n" + base64.b64encode(ROOT).decode() + "\n\n- log AAAAAAAA\n",
        "log\n7\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 log AAAAAAAA",
    ],
)
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(CheckpointFormatError):
        open_checkpoint(text, NoteSigner.generate("log").verifier())


def test_verifier_key_string_round_trip() -> None:
    verifier = NoteSigner.generate("junction.local/audit").verifier()
    text = verifier.verifier_key()
    assert text.startswith(f"junction.local/audit+{verifier.key_hash.hex()}+")
    parsed = NoteVerifier.from_verifier_key(text)
    assert parsed.key_hash == verifier.key_hash
    with pytest.raises(CheckpointFormatError):
        NoteVerifier.from_verifier_key(text.replace("+", "+00", 1))
