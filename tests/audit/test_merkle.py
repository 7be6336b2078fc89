"""RFC 6962 vectors from transparency-dev/merkle, and proofs against a naive recompute."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle
from audit.errors import ProofError

# transparency-dev/merkle's vectors, kept in the repository so a clone anywhere runs them.
VECTORS = Path(__file__).resolve().parent / "vectors" / "rfc6962"
LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


def _vectors(kind: str) -> list[Path]:
    folder = VECTORS / kind
    if not folder.is_dir():
        pytest.fail(f"RFC 6962 test vectors not found at {folder.resolve()}", pytrace=False)
    return sorted(folder.rglob("*.json"))


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=lambda p: p.name)
def test_inclusion_vectors(path: Path) -> None:
    v = _load(path)
    proof = [_b64(p) for p in v["proof"] or []]
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], proof, _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("path", _vectors("consistency"), ids=lambda p: p.name)
def test_consistency_vectors(path: Path) -> None:
    v = _load(path)
    proof = [_b64(p) for p in v["proof"] or []]
    args = (v["size1"], v["size2"], _b64(v["root1"]), _b64(v["root2"]), proof)
    if v["wantErr"]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_vector_counts_cover_both_outcomes() -> None:
    outcomes = [_load(p)["wantErr"] for p in _vectors("inclusion") + _vectors("consistency")]
    assert len(outcomes) > 150
    assert outcomes.count(False) > 10


def test_reference_tree_heads() -> None:
    heads = {}
    for line in (VECTORS / "README.md").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 64:
            heads[int(parts[0])] = parts[1]
    assert sorted(heads) == list(range(1, 9))
    for n, want in heads.items():
        assert merkle.root_from_leaf_hashes(map(merkle.leaf_hash, LEAVES[:n])).hex() == want
    assert merkle.root_from_leaf_hashes([]) == hashlib.sha256(b"").digest()


def _naive_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(_naive_root(hashes[:k]), _naive_root(hashes[k:]))


def _naive_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return [*_naive_path(m, hashes[:k]), _naive_root(hashes[k:])]
    return [*_naive_path(m - k, hashes[k:]), _naive_root(hashes[:k])]


def _naive_subproof(m: int, hashes: list[bytes], known: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if known else [_naive_root(hashes)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_naive_subproof(m, hashes[:k], known), _naive_root(hashes[k:])]
    return [*_naive_subproof(m - k, hashes[k:], False), _naive_root(hashes[:k])]


def _tree(n: int) -> tuple[list[bytes], merkle.NodeReader]:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    nodes: dict[merkle.NodeId, bytes] = {(0, i): h for i, h in enumerate(hashes)}
    compact = merkle.CompactRange()
    for h in hashes:
        nodes.update(compact.append(h))

    def read(ids: Any) -> dict[merkle.NodeId, bytes]:
        return {i: nodes[i] for i in ids if i in nodes}

    return hashes, read


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.data())
def test_proofs_match_naive_recompute(n: int, data: st.DataObject) -> None:
    hashes, read = _tree(n)
    root = _naive_root(hashes)
    assert merkle.root_from_leaf_hashes(hashes) == root
    index = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(index, n, read)
    assert proof == _naive_path(index, hashes)
    merkle.verify_inclusion(hashes[index], index, n, proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(hashes[index], index, n, proof, merkle.leaf_hash(b"x"))
    old = data.draw(st.integers(1, n))
    consistency = merkle.consistency_proof(old, n, read)
    assert consistency == _naive_subproof(old, hashes, True)
    merkle.verify_consistency(old, n, _naive_root(hashes[:old]), root, consistency)
    if old < n:
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, n, merkle.leaf_hash(b"fork"), root, consistency)


def test_proof_from_incomplete_store_is_an_error() -> None:
    _, read = _tree(8)

    def lossy(ids: Any) -> dict[merkle.NodeId, bytes]:
        return {k: v for k, v in read(ids).items() if k != (1, 1)}

    with pytest.raises(ProofError, match="lacks tree nodes"):
        merkle.inclusion_proof(0, 8, lossy)


def test_compact_range_push_subtree_matches_leaf_appends() -> None:
    hashes, _ = _tree(48)
    whole = merkle.CompactRange()
    for h in hashes:
        whole.append(h)
    chunked = merkle.CompactRange()
    chunked.push_subtree(5, _naive_root(hashes[:32]))
    chunked.push_subtree(4, _naive_root(hashes[32:48]))
    assert chunked.root() == whole.root() == _naive_root(hashes)
    assert chunked.frontier == whole.frontier


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 200), st.data())
def test_subtree_builder_gives_a_consistency_proof_from_slices_of_any_length(
    n: int, data: st.DataObject
) -> None:
    hashes, read = _tree(n)
    old = data.draw(st.integers(1, n))
    ranges = merkle.consistency_ranges(old, n)
    builder = merkle.SubtreeBuilder(node for s, e in ranges for node in merkle.perfect_cover(s, e))
    start = 0
    while start < n:
        end = data.draw(st.integers(start + 1, n))
        builder.add(b"".join(hashes[start:end]))
        start = end
    assert merkle.consistency_proof(old, n, lambda _: builder.built) == (
        merkle.consistency_proof(old, n, read)
    )
