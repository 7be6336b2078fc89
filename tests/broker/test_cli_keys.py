"""``junction keys``: key files an operator can trust."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from typer.testing import CliRunner

from audit import DEFAULT_ORIGIN, AuditLog, Entry, Kind, NoteSigner
from audit.checkpoint import Checkpoint, sign_checkpoint
from broker.cli import app
from connectors.protocol.keys import key_id_for, load_private_key

runner = CliRunner()


def test_generate_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    result = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    private = tmp_path / "signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    pair = load_private_key(private)
    assert f"key id: {pair.key_id}" in result.output


def test_generate_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    runner.invoke(app, ["keys", "generate", "--out", str(tmp_path)])
    before = (tmp_path / "signing.key").read_bytes()
    refused = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path)])
    assert refused.exit_code == 2
    assert "already exists; pass --force" in refused.output
    assert (tmp_path / "signing.key").read_bytes() == before
    forced = runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--force"])
    assert forced.exit_code == 0
    assert (tmp_path / "signing.key").read_bytes() != before


def test_generate_writes_only_inside_the_directory_given(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    refused = runner.invoke(app, ["keys", "generate", "--out", str(out), "--name", "../escape"])
    assert refused.exit_code == 2
    assert refused.output.startswith("error: key name '../escape' must be a plain file name")
    assert list(tmp_path.rglob("*.key")) == []


def test_show_prints_the_same_key_id_for_either_file(tmp_path: Path) -> None:
    runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--name", "police"])
    expected = key_id_for(load_private_key(tmp_path / "police.key").public_key)
    for name in ("police.key", "police.pub"):
        result = runner.invoke(app, ["keys", "show", str(tmp_path / name)])
        assert result.exit_code == 0
        assert f"key id: {expected}" in result.output


def test_show_prints_a_log_keys_hash_as_its_checkpoints_carry_it(tmp_path: Path) -> None:
    runner.invoke(app, ["keys", "generate", "--out", str(tmp_path), "--name", "log"])
    signer = NoteSigner.from_pem(tmp_path / "log.key", DEFAULT_ORIGIN)
    # The key hash is the first four bytes of each signature in a signed checkpoint.
    note = sign_checkpoint(Checkpoint(DEFAULT_ORIGIN, 1, b"\x00" * 32), signer)
    signed_with = base64.b64decode(note.rstrip("\n").rpartition(" ")[2])[:4].hex()
    result = runner.invoke(
        app, ["keys", "show", str(tmp_path / "log.pub"), "--origin", DEFAULT_ORIGIN]
    )
    assert result.exit_code == 0, result.output
    assert f"log key hash: {signed_with}" in result.output
    assert f"verifier key: {DEFAULT_ORIGIN}+{signed_with}+" in result.output
    # ... and it is the one the audit commands name the key by.
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog.open(url, signer) as log:
        log.append(Entry(kind=Kind.FETCH, actor="caseworker"))
    pub = str(tmp_path / "log.pub")
    verified = runner.invoke(app, ["audit", "verify", "--db", url, "--public-key", pub])
    assert f"trusted log key hash {signed_with}" in verified.output
    proved = runner.invoke(
        app, ["audit", "prove", "--index", "0", "--db", url, "--public-key", pub]
    )
    assert f"(log key hash {signed_with})" in " ".join(proved.output.split())
    bad = runner.invoke(app, ["keys", "show", pub, "--origin", "not a name"])
    assert bad.exit_code == 2
    assert bad.output.startswith("error: --origin: ")


def test_show_explains_a_file_that_is_not_a_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    for content in (b"hello", b"\xff\xfe\x00 not even text"):
        junk.write_bytes(content)
        result = runner.invoke(app, ["keys", "show", str(junk)])
        assert result.exit_code == 2
        assert result.output == (
            f"error: {junk} is neither a PEM public key nor a base64 raw Ed25519 public key\n"
        )


def test_every_group_explains_itself() -> None:
    top = runner.invoke(app, ["--help"])
    assert "keys" in top.output
    assert "Create and inspect Ed25519 signing keys" in top.output
    keys = runner.invoke(app, ["keys", "--help"])
    assert "generate" in keys.output
    assert "show" in keys.output
