"""A Merkle tree over the ledger's events in the RFC 9162 (Certificate Transparency v2) style.

Leaf i is the chained hash of event i+1. With SHA-256 and domain separation,

    leaf_hash(d)   = SHA-256(0x00 || d)
    node(l, r)     = SHA-256(0x01 || l || r)
    MTH(D[0:1])    = leaf_hash(d0)
    MTH(D[0:n])    = node(MTH(D[0:k]), MTH(D[k:n]))   k = the largest power of two < n

An inclusion proof shows one event is in the tree of size n with root R; a consistency proof
shows the tree of size n extends the tree of size m: nothing before m was changed, removed or
reordered. Both are logarithmic in n, so a party holding one signed checkpoint can check any
later head cheaply. Worked example: for 3 leaves a, b, c the root is
node(node(leaf_hash(a), leaf_hash(b)), leaf_hash(c)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf (domain-separated from inner nodes)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    """Hash an inner node from its two children."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)  # the largest power of two < n (n >= 2)


def push(stack: list[tuple[int, bytes]], h: bytes) -> None:
    """Add one leaf hash to a compact range: perfect subtrees of strictly decreasing size."""
    size = 1
    while stack and stack[-1][0] == size:
        size, h = size * 2, node(stack.pop()[1], h)
    stack.append((size, h))


def root_of_stack(stack: list[tuple[int, bytes]]) -> bytes:
    """Return MTH of the leaves pushed so far (the stack is left as it is)."""
    if not stack:
        return hashlib.sha256(b"").digest()
    h = stack[-1][1]
    for _size, left in reversed(stack[:-1]):
        h = node(left, h)
    return h


def root(leaves: Iterable[bytes]) -> bytes:
    """Return MTH over leaf hashes (already `leaf_hash`ed), in one pass and O(log n) memory."""
    stack: list[tuple[int, bytes]] = []
    for h in leaves:
        push(stack, h)
    return root_of_stack(stack)


def inclusion_proof(hashes: Sequence[bytes], m: int) -> list[bytes]:
    """Return the audit path of leaf m (0-based) in the tree over all `hashes`."""
    def path(lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m - lo < k:
            return path(lo, lo + k) + [root(hashes[lo + k:hi])]
        return path(lo + k, hi) + [root(hashes[lo:lo + k])]
    if not 0 <= m < len(hashes):
        raise ValueError(f"leaf {m} is not in a tree of {len(hashes)} leaves")
    return path(0, len(hashes))


def verify_inclusion(leaf: bytes, m: int, n: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """Check an audit path (RFC 9162 2.1.3.2): leaf hash `leaf` at index m of n has root `expected_root`."""
    if not 0 <= m < n:
        return False
    fn, sn, r = m, n - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == expected_root


def consistency_proof(hashes: Sequence[bytes], m: int) -> list[bytes]:
    """Return the proof that the tree of the first m leaves is a prefix of the tree of all `hashes`."""
    def sub(lo: int, hi: int, first: bool) -> list[bytes]:
        if m - lo == hi - lo:
            return [] if first else [root(hashes[lo:hi])]
        k = _split(hi - lo)
        if m - lo <= k:
            return sub(lo, lo + k, first) + [root(hashes[lo + k:hi])]
        return sub(lo + k, hi, False) + [root(hashes[lo:lo + k])]
    if not 0 < m <= len(hashes):
        raise ValueError(f"no consistency proof from {m} leaves to {len(hashes)}")
    return sub(0, len(hashes), True)


def verify_consistency(m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]) -> bool:
    """Check a consistency proof (RFC 9162 2.1.4.2) between trees of sizes m <= n."""
    if not 0 < m <= n:
        return False
    if m == n:
        return not proof and root_m == root_n
    proof = list(proof)
    if m & (m - 1) == 0:  # m is a power of two: the old root is itself the first node
        proof = [root_m] + proof
    if not proof:
        return False
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == root_m and sr == root_n
