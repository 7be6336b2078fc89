"""Loading bundles: what goes in, what the digest covers, and bad bundles refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.bundle import load_bundle
from policies.errors import BundleError
from tests.policies.factories import copy_bundle


def test_data_files_are_mounted_at_their_paths(tmp_path: Path) -> None:
    bundle = load_bundle([copy_bundle(tmp_path)])
    assert "child_protection_enquiry" in bundle.data["catalogue"]["purposes"]
    assert "rego/family.rego" in bundle.modules
    assert "rego/family_test.rego" in bundle.tests


def test_digest_is_stable_and_names_every_byte(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    first = load_bundle([root]).digest
    assert load_bundle([root]).digest == first
    assert first.startswith("sha256:")
    reasons = root / "data" / "catalogue" / "reason_codes.json"
    reasons.write_text(reasons.read_text().replace("needs a case reference", "needs a case ref"))
    assert load_bundle([root]).digest != first


def test_a_second_directory_adds_to_the_bundle(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path / "shipped")
    local = tmp_path / "local"
    (local / "rego").mkdir(parents=True)
    (local / "rego" / "local.rego").write_text("package local\n\nimport rego.v1\n\nok := true\n")
    combined = load_bundle([root, local])
    assert "rego/local.rego" in combined.modules
    assert combined.digest != load_bundle([root]).digest


def test_two_files_at_one_data_path_clash(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path / "a")
    other = copy_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="clashes"):
        load_bundle([root, other])


def test_bad_json_is_named(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    (root / "data" / "catalogue" / "purposes.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"purposes\.json is not valid JSON"):
        load_bundle([root])


def test_missing_directory_and_empty_bundle_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle([tmp_path / "nowhere"])
    with pytest.raises(BundleError, match="no Rego modules"):
        load_bundle([tmp_path])


def test_a_bundle_directory_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    (tmp_path / "bundle.txt").write_text("not a bundle\n")
    with pytest.raises(BundleError) as caught:
        load_bundle([tmp_path / "bundle.txt"])
    assert caught.value.detail == f"bundle directory {tmp_path}/bundle.txt is a file, not a folder"
