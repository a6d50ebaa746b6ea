"""Architecture variants of MD (docs/concepts.md §7): attention + output, and mixtures of experts."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def normal_cosine(normals_a: Tensor, normals_b: Tensor) -> float:
    """Return eta: |cos| between the mean unit normals of two layers that share an input space (rows, in)."""
    if normals_a.shape[1] != normals_b.shape[1]:
        raise ValueError(f"eta needs normals in one space: got {normals_a.shape[1]} and {normals_b.shape[1]} columns; "
                         f"pair layers that read the same hidden state")
    mean = [torch.nn.functional.normalize(n.float(), dim=1).mean(0) for n in (normals_a, normals_b)]
    if min(float(m.norm()) for m in mean) == 0:
        raise ValueError("a layer's normals cancel out (zero mean direction); eta is undefined")
    return float(torch.nn.functional.cosine_similarity(mean[0], mean[1], dim=0).abs())


def md_total(md_att: float, md_out: float, eta: float, alpha: float = 0.65) -> float:
    """Return MD_total = alpha MD_att + (1 - alpha) MD_out eta."""
    if not 0 <= alpha <= 1 or not 0 <= eta <= 1:
        raise ValueError(f"alpha and eta must be in [0, 1], got alpha={alpha}, eta={eta}")
    return alpha * md_att + (1 - alpha) * md_out * eta


def _freqs(freqs: Sequence[float], n: int) -> Tensor:
    f = torch.as_tensor(freqs, dtype=torch.float64)
    if f.shape != (n,):
        raise ValueError(f"need one activation frequency per expert ({n}), got {tuple(f.shape)}")
    if bool((f < 0).any()) or abs(float(f.sum()) - 1) > 1e-6:
        raise ValueError(f"expert frequencies must be >= 0 and sum to 1, got sum {float(f.sum()):.6f}")
    return f


def md_moe(mds: Sequence[float], freqs: Sequence[float]) -> float:
    """Return MD_MoE = sum_k f_k MD_k over expert activation frequencies."""
    return float((torch.as_tensor(mds, dtype=torch.float64) * _freqs(freqs, len(mds))).sum())


def expert_priv_thresholds(freqs: Sequence[float], tau_priv: float, hot: float = 0.15, drop: float = 0.125) -> list[float]:
    """Return tau_priv per expert: lowered by `drop` (the design's 10-15%) for experts with f_k > hot."""
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    f = _freqs(freqs, len(freqs))
    return [tau_priv * (1 - drop) if float(x) > hot else tau_priv for x in f]
