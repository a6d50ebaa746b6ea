"""Bit packing: b-bit codes laid out as one little-endian bit stream per row in int32 words.

Code i of a row occupies bits [i*b, (i+1)*b) of the stream; 3-bit codes cross word borders.
The same layout is read by the torch path and by the triton kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor


def words_for(n: int, bits: int) -> int:
    """Return the number of int32 words holding n codes of `bits` bits."""
    return -(-n * bits // 32)


def pack(codes: Tensor, bits: int) -> Tensor:
    """Pack integer codes (rows, n) in [0, 2^bits) into int32 words (rows, words_for(n, bits))."""
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D (rows, n), got shape {tuple(codes.shape)}")
    c = codes.to(torch.int64)
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= 2 ** bits):
        raise ValueError(f"codes must lie in [0, {2 ** bits - 1}] for {bits} bits")
    rows, n = c.shape
    nw = words_for(n, bits)
    pos = torch.arange(n, dtype=torch.int64) * bits
    word, off = pos // 32, pos % 32
    out = torch.zeros(rows, nw + 1, dtype=torch.int64)
    out.index_add_(1, word, c << off)  # bits that spill past 32 are moved to the next word below
    spill = (off + bits) > 32
    if bool(spill.any()):
        out.index_add_(1, word[spill] + 1, c[:, spill] >> (32 - off[spill]))
    out = out[:, :nw] & 0xFFFFFFFF
    return torch.where(out >= 2 ** 31, out - 2 ** 32, out).to(torch.int32)


def unpack(words: Tensor, bits: int, n: int) -> Tensor:
    """Unpack int32 words (rows, w) into n codes per row (int64)."""
    w = words.to(torch.int64) & 0xFFFFFFFF
    w = torch.cat([w, torch.zeros(w.shape[0], 1, dtype=torch.int64, device=w.device)], 1)
    pos = torch.arange(n, dtype=torch.int64, device=w.device) * bits
    word, off = pos // 32, pos % 32
    val = (w[:, word] >> off) | (w[:, word + 1] << (32 - off))
    return val & (2 ** bits - 1)
