"""GPTQ (Frantar et al., arXiv 2210.17323, Algorithm 1) as an mdq quantizer backend.

Per linear layer: H = 2/n sum x x^T over the calibration inputs (inputs that already went
through the quantized earlier blocks), dead columns zeroed, damping lambda = damp * mean(diag H),
the upper Cholesky factor of H^-1, then columns quantized left to right in lazy blocks of
`blocksize`: each column's error, divided by its Cholesky diagonal, is spread over the columns
not yet quantized in the block, and the block's accumulated error over the rest of the matrix
at once. Group scales are computed from the error-updated weights when a group starts (or,
with `act_order`, from the original weights of each group, so that columns can be taken in
order of decreasing diag(H) and the stored layout needs no permutation index).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.layerwise import (
    layer_inputs, linears_of, quantized_layer, replace, sequential_groups, shape_of, weight_of,
)
from mdq_quantkit.quant import group_params


def _hinv_upper(H: Tensor, damp: float) -> Tensor:
    """Return the upper Cholesky factor of (H + lambda I)^-1, raising lambda until H is positive definite."""
    mean = float(torch.diag(H).mean())
    for factor in (1, 10, 100):
        Hd = H + damp * factor * mean * torch.eye(H.shape[0], dtype=H.dtype)
        L, info = torch.linalg.cholesky_ex(Hd)
        if int(info) == 0:
            return torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    raise ValueError(f"the Hessian is not positive definite even with damping {damp * 100:g} x mean(diag H); "
                     f"give more calibration samples or a larger damp")


def gptq_quantize(W: Tensor, H: Tensor, cfg: QuantConfig, *, blocksize: int = 128, damp: float = 0.01,
                  act_order: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Return (codes, scales, zeros) for weight W (out, in) given the input Hessian H (in, in)."""
    W = W.clone().float()
    H = H.clone().float()
    out_f, n = W.shape
    g, G = cfg.group(n), cfg.groups(n)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    scales = torch.zeros(out_f, G)
    zeros = torch.zeros(out_f, G)
    if act_order:  # static groups: every group's range from the original weights, fixed up front
        for j in range(G):
            scales[:, j], zeros[:, j] = group_params(W[:, j * g:(j + 1) * g], cfg)
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    else:
        perm = torch.arange(n)
    Hinv = _hinv_upper(H, damp)
    Q = torch.zeros_like(W)
    maxq = cfg.maxq
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            gi = col // g
            if not act_order and col % g == 0:
                # the group's range from the weights as updated so far (this block's and the rest)
                scales[:, gi], zeros[:, gi] = group_params(torch.cat([W1[:, i:], W[:, i2:]], 1)[:, :g], cfg)
            s, z = scales[:, gi], zeros[:, gi]
            w = W1[:, i]
            q = torch.clamp(torch.round(w / s) + z, 0, maxq)
            Q[:, i1 + i] = q
            err = (w - s * (q - z)) / Hinv1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    codes = torch.empty_like(Q)
    codes[:, perm] = Q
    return codes.long(), scales, zeros


class GPTQ:
    """The GPTQ backend: per block, layers sharing an input are quantized together, in forward order.

    With `true_sequential` (the default, as in the reference implementation), the Hessian of
    each group is measured on inputs that already went through the quantized earlier groups
    of the same block (q/k/v, then o, then gate/up, then down); each forward stops once the
    group's layers have been reached. Layers sharing an input share one Hessian.
    """

    name = "gptq"
    needs_calibration = True

    def __init__(self, blocksize: int = 128, damp: float = 0.01, act_order: bool = True,
                 true_sequential: bool = True) -> None:
        if blocksize < 1 or not 0 < damp < 1:
            raise ValueError(f"blocksize must be >= 1 and damp in (0, 1), got {blocksize}, {damp}")
        self.blocksize, self.damp, self.act_order = blocksize, damp, act_order
        self.true_sequential = true_sequential

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Accumulate each group's H from the block's inputs, then quantize the group's layers with GPTQ."""
        groups = sequential_groups(block, inputs[0], kwargs)
        stats: dict[str, Any] = {}
        if self.true_sequential:
            for group in groups:
                stats.update(self._quantize(block, [group], inputs, kwargs, cfg))
        else:
            stats.update(self._quantize(block, groups, inputs, kwargs, cfg))
        return stats

    def _quantize(self, block: nn.Module, groups: list[list[str]], inputs: list[Tensor], kwargs: dict[str, Any],
                  cfg: QuantConfig) -> dict[str, Any]:
        lin = linears_of(block)
        lead = {n: g[0] for g in groups for n in g}
        H = {g[0]: torch.zeros(shape_of(lin[g[0]])[1], shape_of(lin[g[0]])[1]) for g in groups}
        seen = dict.fromkeys(H, 0)

        def add(name: str, x: Tensor) -> None:
            t = x.shape[0]
            H[name] *= seen[name] / (seen[name] + t)
            seen[name] += t
            x = x * (2.0 / seen[name]) ** 0.5
            H[name].addmm_(x.t(), x)

        layer_inputs(block, list(H), inputs, kwargs, add, stop=True)
        stats = {}
        for name in lead:
            layer, h = lin[name], H[lead[name]]
            w = weight_of(layer)
            codes, scales, zeros = gptq_quantize(w, h, cfg, blocksize=self.blocksize, damp=self.damp,
                                                 act_order=self.act_order)
            q = quantized_layer(layer, codes, scales, zeros, cfg)
            d = q.dequantized() - w
            stats[name] = {"weight_err": float(d.pow(2).sum()), "proxy_loss": float(torch.einsum("oi,ij,oj->", d, h, d))}
            replace(block, name, q)
        return stats
