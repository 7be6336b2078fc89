"""``junction policy``: test, explain and digest, as an IG officer would run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from policies.bundle import load_bundle
from policies.cli import app
from policies.opa_standin import OpaStandin
from policies.settings import DEFAULT_BUNDLE_DIR, PolicySettings
from tests.policies.factories import copy_bundle

EXAMPLE = DEFAULT_BUNDLE_DIR / "examples" / "family_query.json"
runner = CliRunner()


def test_policy_test_passes_on_the_shipped_bundle() -> None:
    result = runner.invoke(app, ["test"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS: ")
    assert " 0 failed, 0 errors" in result.output


def test_policy_test_names_a_failing_test_and_exits_non_zero(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    (root / "rego" / "extra_test.rego").write_text(
        "package junction.extra_test\n\nimport rego.v1\n\ntest_always_fails if false\n"
    )
    result = runner.invoke(app, ["test", "--bundle", str(root)])
    assert result.exit_code == 1
    assert "FAIL rego/extra_test.rego: test_always_fails" in result.output
    assert "1 failed" in result.output


def test_digest_prints_the_bundle_digest(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    result = runner.invoke(app, ["digest", "--bundle", str(root)])
    assert result.exit_code == 0
    assert result.output.strip() == load_bundle([root]).digest


@pytest.mark.parametrize("command", ["digest", "test"])
def test_a_data_file_nested_too_deeply_is_one_line(tmp_path: Path, command: str) -> None:
    root = copy_bundle(tmp_path)
    deep = root / "data" / "local" / "deep.json"
    deep.parent.mkdir()
    deep.write_text("[" * 100_000 + "]" * 100_000)
    result = runner.invoke(app, [command, "--bundle", str(root)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {deep} nests arrays or objects too deeply to read; a policy data"
        " document needs only a few levels\n"
    )


def test_explain_prints_every_reason() -> None:
    result = runner.invoke(app, ["explain", "--input", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "request: ALLOW" in result.output
    assert (
        "oakfield-primary / leo: ALLOW (tier: full, agreement: dsa-schools-csc v3)" in result.output
    )
    assert "withheld education.exclusions_12m: [restricted_by_person]" in result.output
    assert "northshire-police / sam: DENY" in result.output
    assert "riverside-housing / sam: DENY (tier: none, agreement: none)" in result.output


def test_explain_json_and_opa_engine_agree() -> None:
    embedded = runner.invoke(app, ["explain", "--input", str(EXAMPLE), "--json"])
    with OpaStandin() as server:
        opa = runner.invoke(
            app,
            ["explain", "--input", str(EXAMPLE), "--json", "--engine", "opa"],
            env={"JUNCTION_POLICY_OPA_URL": server.url},
        )
    assert embedded.exit_code == 0
    assert opa.exit_code == 0, opa.output
    ours, theirs = json.loads(embedded.output), json.loads(opa.output)
    assert (ours["engine"], theirs["engine"]) == ("regorus", "opa")
    assert ours["exchanges"] == theirs["exchanges"]
    assert ours["bundle_digest"] == theirs["bundle_digest"]


def test_explain_rejects_a_bad_input_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"request": {"purpose": "child_protection_enquiry"}}))
    result = runner.invoke(app, ["explain", "--input", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "request.requester" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    missing = runner.invoke(app, ["explain", "--input", str(tmp_path / "missing.json")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: cannot read")


def test_bundle_dirs_may_name_one_folder_as_it_is(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    result = runner.invoke(app, ["digest"], env={"JUNCTION_POLICY_BUNDLE_DIRS": str(root)})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == load_bundle([root]).digest


def test_bundle_dirs_may_be_a_json_list_or_folders_separated_by_pathsep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("JUNCTION_POLICY_BUNDLE_DIRS", f"{first}{os.pathsep}{second}")
    assert PolicySettings().bundle_dirs == [first, second]
    monkeypatch.setenv("JUNCTION_POLICY_BUNDLE_DIRS", json.dumps([str(first), str(second)]))
    assert PolicySettings().bundle_dirs == [first, second]


def test_explain_json_is_only_json_and_a_bundle_that_cannot_decide_exits_1(
    tmp_path: Path,
) -> None:
    # Without its catalogues the rules cannot decide: every exchange is a policy error.
    root = copy_bundle(tmp_path)
    shutil.rmtree(root / "data")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "broker.cli", "policy", "explain", "--json"),
            *("--input", str(EXAMPLE), "--bundle", str(root)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    decision = json.loads(result.stdout)
    assert [reason["code"] for reason in decision["submit"]["reasons"]] == ["policy_error"]
    assert "policy evaluation failed" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "error: the policy could not decide this input"
    )


def test_explain_of_a_decision_exits_0_whatever_it_decides() -> None:
    result = runner.invoke(app, ["explain", "--input", str(EXAMPLE), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["submit"]["allow"] is True
