"""RFC 6962 Merkle trees (cardsvc/audit/merkle.py): the test vectors of the certificate
transparency implementations (transparency-dev/merkle, proof/verify_test.go), the RFC's own
definition as an oracle, and every index's proof for many sizes."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cardsvc.audit import merkle

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")]
# (leaf index, tree size, audit path)
PROOFS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, word for word: the oracle the streaming code is held to."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def test_the_empty_tree_and_the_vectors_roots() -> None:
    assert merkle.root([]).hex() == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert merkle.root(LEAVES[:n]) == ROOTS[n - 1], n


def test_the_root_grows_with_each_leaf() -> None:
    """A frontier's root after each leaf is that prefix's root: what lets one walk check
    many checkpoints."""
    tree = merkle.Frontier()
    for n, data in enumerate(LEAVES, start=1):
        tree.add(data)
        assert tree.size == n and tree.root() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "path"), PROOFS)
def test_the_vectors_audit_paths(index: int, size: int, path: list[str]) -> None:
    got, root = merkle.inclusion_proof(LEAVES, index, size)
    assert [p.hex() for p in got] == path and root == ROOTS[size - 1]
    assert merkle.verify_inclusion(LEAVES[index], index, size, got, ROOTS[size - 1])


@pytest.mark.parametrize(("index", "size", "path"), PROOFS)
def test_corrupted_proofs_of_the_vectors_fail(index: int, size: int, path: list[str]) -> None:
    """The probes certificate transparency's verifiers are tested with."""
    proof, root, leaf = [bytes.fromhex(p) for p in path], ROOTS[size - 1], LEAVES[index]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [(leaf, index - 1, size, proof, root), (leaf, index + 1, size, proof, root),
              (leaf, index ^ 2, size, proof, root), (leaf, index, size * 2, proof, root),
              (leaf, index, size // 2, proof, root), (b"WrongLeaf", index, size, proof, root),
              (leaf, index, size, proof, merkle.EMPTY_ROOT), (leaf, index, size, proof, some),
              (leaf, index, size, [*proof, b""], root), (leaf, index, size, [*proof, root], root),
              (leaf, index, size, [b"", *proof], root), (leaf, index, size, [root, *proof], root),
              (leaf, index, size, proof[:-1], root),
              (leaf, index, size, [proof[0], some, *proof[1:]], root)]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((leaf, index, size, flipped, root))
    for data, i, n, p, r in probes:
        assert not merkle.verify_inclusion(data, i, n, p, r), (i, n, len(p))


def test_every_index_of_small_trees_by_hand() -> None:
    """Sizes 1, 2, 3, 5, 7 and 8, every index: the path is the RFC's PATH and verifies;
    another leaf or index, or a tree twice the size, does not. (A size whose tree has the same
    shape along the path verifies the same root: the root, not the size, is what binds.)"""
    for size in (1, 2, 3, 5, 7, 8):
        for index in range(size):
            path, root = merkle.inclusion_proof(LEAVES, index, size)
            assert path == rfc_path(index, LEAVES[:size]) and root == mth(LEAVES[:size])
            assert merkle.verify_inclusion(LEAVES[index], index, size, path, root)
            assert not merkle.verify_inclusion(LEAVES[index] + b"x", index, size, path, root)
            if size > 1:
                other = (index + 1) % size
                assert not merkle.verify_inclusion(LEAVES[index], other, size, path, root)
                assert not merkle.verify_inclusion(LEAVES[index], index, size * 2, path, root)


def test_a_proof_for_a_leaf_outside_the_tree_is_refused() -> None:
    with pytest.raises(ValueError, match="not in a tree"):
        merkle.inclusion_proof(LEAVES, 8, 8)
    with pytest.raises(ValueError, match="only 8 came"):
        merkle.inclusion_proof(LEAVES, 0, 9)
    assert merkle.root_from_path(merkle.leaf_hash(b""), 0, 0, []) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70), st.data())
def test_every_index_proves_and_a_changed_leaf_fails(leaves: list[bytes],
                                                     data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(leaves)))
    assert merkle.root(leaves[:size]) == mth(leaves[:size])
    for index in range(size):
        path, root = merkle.inclusion_proof(iter(leaves), index, size)
        assert root == mth(leaves[:size])
        assert merkle.verify_inclusion(leaves[index], index, size, path, root)
        changed = leaves[index] + b"\x00"
        assert not merkle.verify_inclusion(changed, index, size, path, root)
        if path:
            tampered = list(path)
            tampered[-1] = hashlib.sha256(tampered[-1]).digest()
            assert not merkle.verify_inclusion(leaves[index], index, size, tampered, root)
