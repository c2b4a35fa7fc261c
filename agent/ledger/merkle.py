"""RFC 9162 §2.1 Merkle tree hash, kept incrementally, with inclusion proofs (pure).

Leaves are the records' payload bytes (which hold ciphertext, never bare coordinates: location has so little
entropy that a hash of it could be brute-forced). ``leaf = SHA-256(0x00 || d)``,
``node = SHA-256(0x01 || l || r)``; the 0x00/0x01 prefixes keep leaves and nodes apart (no second
preimages).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactTree:
    """The roots of the perfect subtrees covering the leaves so far: O(log n) memory.

    Leaves added by their data are hashed in batches of up to ``BATCH`` (or when the root is read): hashing
    in a tight loop costs a fraction of hashing one leaf between each durable write and its fsync, where the
    caches are cold. The result is the same tree."""

    BATCH = 256

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []  # perfect subtree roots, largest first
        self._unhashed: list[bytes] = []  # leaf data added after the last of those, in order

    @property
    def size(self) -> int:
        return self._size + len(self._unhashed)

    def append_leaf(self, data: bytes) -> None:
        """Add the leaf ``leaf_hash(data)``."""
        unhashed = self._unhashed
        unhashed.append(data)
        if len(unhashed) >= self.BATCH:
            self._hash_unhashed()

    def append_leaf_hash(self, leaf: bytes) -> None:
        if self._unhashed:
            self._hash_unhashed()
        self._push(leaf)

    def _hash_unhashed(self) -> None:
        unhashed, self._unhashed = self._unhashed, []
        for data in unhashed:
            self._push(leaf_hash(data))

    def _push(self, leaf: bytes) -> None:
        node = leaf
        size = self._size
        while size & 1:  # each trailing 1 bit is a perfect subtree of the same height to merge with
            node = node_hash(self._stack.pop(), node)
            size >>= 1
        self._stack.append(node)
        self._size += 1

    def root(self) -> bytes:
        if self._unhashed:
            self._hash_unhashed()
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes, straight from the RFC's recursive definition (for tests and proofs)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    split = _largest_power_of_two_below(len(leaves))
    return node_hash(root_of(leaves[:split]), root_of(leaves[split:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, over leaf hashes."""
    if not 0 <= index < len(leaves):
        raise ValueError("leaf index outside the tree")
    if len(leaves) == 1:
        return []
    split = _largest_power_of_two_below(len(leaves))
    if index < split:
        return [*inclusion_proof(leaves[:split], index), root_of(leaves[split:])]
    return [*inclusion_proof(leaves[split:], index - split), root_of(leaves[:split])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, result = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)
