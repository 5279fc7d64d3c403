"""Merkle tree hashing as RFC 6962 (Certificate Transparency) defines it, over the audit trail.

    leaf hash   = SHA-256(0x00 ‖ leaf data)
    node hash   = SHA-256(0x01 ‖ left ‖ right)
    MTH(D[n])   = SHA-256() for n = 0; the leaf hash for n = 1; else, with k the largest power
                  of two smaller than n, the node hash of MTH(D[0:k]) and MTH(D[k:n]).

The prefixes keep a leaf from passing for a node. The root is computed streaming: a `Frontier`
keeps only the roots of the perfect subtrees the leaves so far decompose into (one per set bit
of the count, at most 64), so a trail of millions of rows is hashed in constant memory and the
root of any prefix is there the moment its last leaf is added. An audit path (inclusion proof)
is the list of subtree roots beside the leaf's path to the root, from the leaf up (RFC 6962
section 2.1.1); it is verified with RFC 9162 section 2.1.3.2's algorithm.

This module knows nothing of the database: an auditor's checker runs it on files alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than `n` (n > 1): where RFC 6962 splits n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """A tree being grown leaf by leaf, holding only what its root needs."""

    def __init__(self) -> None:
        self.size = 0
        # (height, hash) of perfect subtrees, left to right, strictly decreasing heights.
        self._stack: list[tuple[int, bytes]] = []

    def add(self, data: bytes) -> None:
        """Append a leaf by its data."""
        self.add_hash(leaf_hash(data))

    def add_hash(self, leaf: bytes) -> None:
        """Append a leaf by its (already prefixed) leaf hash."""
        height, h = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            _, left = self._stack.pop()
            height, h = height + 1, node_hash(left, h)
        self._stack.append((height, h))
        self.size += 1

    def root(self) -> bytes:
        """MTH of the leaves so far: the perfect subtrees folded from the right, which is the
        RFC's recursion read bottom-up (each split point is a subtree boundary)."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def root(leaves: Iterable[bytes]) -> bytes:
    """MTH over the leaves' data."""
    tree = Frontier()
    for data in leaves:
        tree.add(data)
    return tree.root()


def path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [start, end) whose subtree roots make the audit path of leaf `index`
    in a tree of `size` leaves, from the leaf up (RFC 6962 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    out: list[tuple[int, int]] = []
    start, n, m = 0, size, index
    while n > 1:
        k = split(n)
        if m < k:  # the leaf is on the left: the right subtree is beside its path
            out.append((start + k, start + n))
            n = k
        else:
            out.append((start, start + k))
            start, n, m = start + k, n - k, m - k
    out.reverse()  # collected from the root down; a path reads from the leaf up
    return out


def inclusion_proof(leaves: Iterable[bytes], index: int, size: int
                    ) -> tuple[list[bytes], bytes]:
    """(audit path of leaf `index`, root) of the tree over the first `size` leaves' data, in one
    pass: every leaf but `index` lies in exactly one of the path's ranges, each hashed by a
    frontier of its own while the leaves stream by."""
    ranges = path_ranges(index, size)
    by_start = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    hashes: list[bytes | None] = [None] * len(ranges)
    whole, part = Frontier(), Frontier()
    current = 0  # position in by_start
    for i, data in enumerate(leaves):
        if i == size:
            break
        lh = leaf_hash(data)
        whole.add_hash(lh)
        if i == index:
            continue
        r = by_start[current]
        part.add_hash(lh)
        if i == ranges[r][1] - 1:
            hashes[r] = part.root()
            part, current = Frontier(), current + 1
    if whole.size != size:
        raise ValueError(f"a tree of {size} leaves was asked for, only {whole.size} came")
    return [h for h in hashes if h is not None], whole.root()


def root_from_path(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that leaf hash `leaf` at `index` and its audit path imply in a tree of `size`
    leaves; None when the path cannot belong to such a tree (wrong length, bad hash sizes).
    RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0 or len(p) != HASH_SIZE:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


def verify_inclusion(data: bytes, index: int, size: int, path: Sequence[bytes],
                     expected_root: bytes) -> bool:
    """Whether leaf data `data` is leaf `index` of the tree of `size` leaves with this root."""
    return root_from_path(leaf_hash(data), index, size, path) == expected_root
