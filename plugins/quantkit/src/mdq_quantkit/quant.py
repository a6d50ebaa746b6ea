"""Group-wise scales and zero points, quantize and dequantize (the round-to-nearest primitives).

Scales are rounded to float16 as soon as they are computed: what a backend compensates for
(GPTQ's error feedback) is exactly what is stored and dequantized later.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import QuantConfig


def check_finite(w: Tensor, what: str) -> None:
    """Refuse NaN or Inf weights before any work, saying where."""
    if not bool(torch.isfinite(w).all()):
        bad = (~torch.isfinite(w)).nonzero()[0].tolist()
        raise ValueError(f"{what} has a non-finite weight at index {bad}; fix the checkpoint before quantizing")


def group_params(w: Tensor, cfg: QuantConfig) -> tuple[Tensor, Tensor]:
    """Return (scale, zero) per row for one group of columns w (rows, g)."""
    maxq = cfg.maxq
    lo, hi = torch.aminmax(w, dim=1)  # one pass over the group instead of two
    xmin, xmax = torch.clamp(lo, max=0), torch.clamp(hi, min=0)
    if cfg.sym:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = -xmax
    same = xmin == xmax
    xmin, xmax = torch.where(same, -1.0, xmin), torch.where(same, 1.0, xmax)
    scale = ((xmax - xmin) / maxq).half().float().clamp(min=1e-8)
    zero = torch.full_like(scale, (maxq + 1) // 2) if cfg.sym else torch.round(-xmin / scale).clamp(0, maxq)
    return scale, zero


def quantize_codes(w: Tensor, scale: Tensor, zero: Tensor, maxq: int) -> Tensor:
    """Return integer codes clamp(round(w / s) + z, 0, maxq); scale and zero broadcast per row."""
    return torch.clamp(torch.round(w / scale.unsqueeze(-1)) + zero.unsqueeze(-1), 0, maxq)


def dequantize_codes(q: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
    """Return s * (q - z)."""
    return scale.unsqueeze(-1) * (q - zero.unsqueeze(-1))


def group_index(in_features: int, cfg: QuantConfig, device: torch.device | None = None) -> Tensor:
    """Return the group of each input column."""
    return torch.arange(in_features, device=device) // cfg.group(in_features)


def rtn(w: Tensor, cfg: QuantConfig, clip: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Round-to-nearest: return (codes (out, in), scales (out, G), zeros (out, G)).

    `clip` (out, G), if given, bounds |w| per group before the range is taken (AWQ's clipping).
    """
    out_f, in_f = w.shape
    g = cfg.group(in_f)
    codes = torch.empty(out_f, in_f, dtype=torch.int64, device=w.device)
    scales = torch.empty(out_f, cfg.groups(in_f), device=w.device)
    zeros = torch.empty_like(scales)
    for j, c0 in enumerate(range(0, in_f, g)):
        part = w[:, c0:c0 + g].float()
        if clip is not None:
            part = part.clamp(-clip[:, j:j + 1], clip[:, j:j + 1])
        s, z = group_params(part, cfg)
        codes[:, c0:c0 + g] = quantize_codes(w[:, c0:c0 + g].float(), s, z, cfg.maxq).long()
        scales[:, j], zeros[:, j] = s, z
    return codes, scales, zeros


def dequantize(codes: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig) -> Tensor:
    """Return the float weight (out, in) from codes and per-group scales and zeros."""
    gidx = group_index(codes.shape[1], cfg, codes.device)
    return (codes.float() - zeros.float()[:, gidx]) * scales.float()[:, gidx]
