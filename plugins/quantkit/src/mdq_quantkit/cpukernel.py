"""4-bit weights kept packed on CPU and multiplied by torch's int4 CPU kernel.

torch's `_weight_int4pack_mm_for_cpu(x, packed, group, scales_and_zeros)` computes
x @ W^T with W[n, k] = (q[n, k] - 8) * s[g, n] + m[g, n] for g = k // group; our codes
dequantize as s * (q - z), so m = s * (8 - z). The kernel takes groups of 32, 64, 128 or 256
columns that divide K, and N divisible by 16. A layer whose last group is short (SmolLM2's 576
inputs in groups of 128 = 4 x 128 + 64) is cut in two column ranges, each with its own group
size, and the two products are added. Activations, scales and offsets are bfloat16 (the
kernel's vectorized path; float32 input takes a slow scalar path), accumulation is float32.

The packed layout is torch's own (blocked, not documented as stable), so codes are never read
from it directly: `codes()` recovers them exactly by multiplying the identity with unit scales
and offset 8 (each output is one code, an integer bfloat16 holds exactly).
"""

from __future__ import annotations

import torch
from torch import Tensor

GROUPS = (32, 64, 128, 256)


def available() -> bool:
    """Return True when this torch has the int4 CPU kernel."""
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and \
        hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def parts_for(in_features: int, group: int) -> list[tuple[int, int, int]] | None:
    """Return the column ranges (start, stop, group) the kernel can take, or None if it cannot take this layout."""
    tail = in_features % group
    main = in_features - tail
    parts = [(0, main, group)] if main else []
    if tail:
        parts.append((main, in_features, tail))
    return parts if all(g in GROUPS for _, _, g in parts) else None


def usable(out_features: int, in_features: int, group: int, bits: int) -> bool:
    """Return True when a layer of this shape can run on the int4 CPU kernel."""
    return bits == 4 and available() and out_features % 16 == 0 and parts_for(in_features, group) is not None


class Int4Pack:
    """A 4-bit layer in the kernel's packed form: one (packed, scales_and_offsets, group) per column range."""

    def __init__(self, codes: Tensor, scales: Tensor, zeros: Tensor, group: int) -> None:
        out_f, in_f = codes.shape
        parts = parts_for(in_f, group)
        if parts is None or out_f % 16:
            raise ValueError(f"the int4 CPU kernel cannot take a ({out_f}, {in_f}) layer with groups of {group}")
        self.out_features, self.in_features = out_f, in_f
        self.parts: list[tuple[int, int, int, Tensor, Tensor]] = []
        g0 = 0
        for k0, k1, g in parts:
            n_groups = (k1 - k0) // g
            s = scales[:, g0:g0 + n_groups].float().t()  # (G, N)
            z = zeros[:, g0:g0 + n_groups].float().t()
            sz = torch.stack([s, s * (8 - z)], -1).to(torch.bfloat16).contiguous()  # (G, N, 2)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes[:, k0:k1].to(torch.int32).contiguous(), 1)
            self.parts.append((k0, k1, g, packed, sz))
            g0 += n_groups

    def matmul(self, x: Tensor) -> Tensor:
        """Return x (M, K) @ W^T (K, N) in float32."""
        xb = x.to(torch.bfloat16)
        y = None
        for k0, k1, g, packed, sz in self.parts:
            xp = xb if (k0, k1) == (0, self.in_features) else xb[:, k0:k1].contiguous()
            part = torch.ops.aten._weight_int4pack_mm_for_cpu(xp, packed, g, sz).float()
            y = part if y is None else y.add_(part)
        assert y is not None
        return y

    def codes(self) -> Tensor:
        """Return the integer codes (out, in) held in the packed form, recovered exactly."""
        out = torch.empty(self.out_features, self.in_features, dtype=torch.int64)
        for k0, k1, g, packed, sz in self.parts:
            eye = torch.eye(k1 - k0, dtype=torch.bfloat16)
            unit = torch.stack([torch.ones(sz.shape[:2]), torch.full(sz.shape[:2], 8.0)], -1).to(torch.bfloat16)
            out[:, k0:k1] = torch.ops.aten._weight_int4pack_mm_for_cpu(eye, packed, g, unit).float().round().t().long()
        return out

    def nbytes(self) -> int:
        """Return the bytes the packed form holds."""
        return sum(p.numel() * p.element_size() + sz.numel() * sz.element_size() for *_, p, sz in self.parts)
