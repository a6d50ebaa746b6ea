"""AWQ (Lin et al., arXiv 2306.00978) as an mdq quantizer backend.

For each group of linear layers sharing one input (q/k/v after the attention norm, gate/up after
the MLP norm, down after up, o after v where the head layout allows), a per-input-channel scale
s = mean|x|^a / mean|w~|^(1-a) (normalized, w~ = |w| over its group maximum) is searched over a
grid of a in [0, 1): the a minimizing ||X W^T - X (Q(W diag s) diag s^-1)^T||^2 on calibration
inputs wins. s is folded into the previous op (norm weight or linear rows divided by s), the
group's weights multiplied by it, so the float model is unchanged. Then, per layer, a clipping
search picks for each row and group the max |w| (shrunk by up to 50%) minimizing the output
error, and the layer is quantized round-to-nearest within the clipped range. Architectures
whose previous op cannot absorb s (e.g. GPT-2's fused attention) get the clipping search only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.layerwise import layer_inputs, linears_of, quantized_layer, replace, shape_of, weight_of
from mdq_quantkit.quant import dequantize, rtn

# (previous op, layers sharing its output) for Llama-style blocks
LLAMA_GROUPS = [("input_layernorm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
                ("self_attn.v_proj", ["self_attn.o_proj"]),
                ("post_attention_layernorm", ["mlp.gate_proj", "mlp.up_proj"]),
                ("mlp.up_proj", ["mlp.down_proj"])]


def fake_quant(w: Tensor, cfg: QuantConfig, clip: Tensor | None = None) -> Tensor:
    """Return Q(w) as float (quantize then dequantize)."""
    return dequantize(*rtn(w, cfg, clip), cfg)


def scale_groups(block: nn.Module) -> list[tuple[str, list[str]]]:
    """Return the (previous op, layers) groups whose scales can be folded in this block."""
    names = dict(block.named_modules())
    out = []
    for prev, layers in LLAMA_GROUPS:
        if prev not in names or not all(n in names for n in layers):
            continue
        p = names[prev]
        width = p.weight.shape[0]  # a norm's weight or a linear's output rows
        if all(shape_of(names[n])[1] == width for n in layers):
            out.append((prev, layers))  # o_proj after v_proj only without grouped-query heads
    return out


def search_scale(X: Tensor, Ws: list[Tensor], cfg: QuantConfig, n_grid: int = 20) -> tuple[Tensor, float, float]:
    """Return (s, best alpha, best loss) for layers Ws sharing input X (tokens, in)."""
    W = torch.cat(Ws, 0)
    x_mean = X.abs().mean(0)
    g = cfg.group(W.shape[1])
    w_abs = W.abs()
    gmax = torch.cat([w_abs[:, c:c + g].amax(1, keepdim=True).expand(-1, min(g, W.shape[1] - c))
                      for c in range(0, W.shape[1], g)], 1).clamp(min=1e-8)
    w_mean = (w_abs / gmax).mean(0)
    Y = X @ W.t()
    best = (torch.ones_like(x_mean), 0.0, float(((Y - X @ fake_quant(W, cfg).t()) ** 2).mean()))
    for i in range(1, n_grid):
        a = i / n_grid
        s = (x_mean.pow(a) / w_mean.pow(1 - a).clamp(min=1e-4)).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        Wq = fake_quant(W * s, cfg) / s
        loss = float(((Y - X @ Wq.t()) ** 2).mean())
        if loss < best[2]:
            best = (s, a, loss)
    return best


def search_clip(X: Tensor, W: Tensor, cfg: QuantConfig, n_grid: int = 20, max_shrink: float = 0.5) -> Tensor:
    """Return the per-row, per-group clip value (out, G) minimizing the layer's output error."""
    out_f, n = W.shape
    g, G = cfg.group(n), cfg.groups(n)
    clip = torch.empty(out_f, G)
    for j, c0 in enumerate(range(0, n, g)):
        Wg, Xg = W[:, c0:c0 + g], X[:, c0:c0 + g]
        amax = Wg.abs().amax(1).clamp(min=1e-8)
        Y = Xg @ Wg.t()
        best_err = torch.full((out_f,), float("inf"))
        best = amax.clone()
        for i in range(int(max_shrink * n_grid)):
            c = amax * (1 - i / n_grid)
            part = QuantConfig(cfg.bits, Wg.shape[1], cfg.sym)
            Wq = fake_quant(Wg, part, c.unsqueeze(1))
            err = ((Y - Xg @ Wq.t()) ** 2).mean(0)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, c, best)
        clip[:, j] = best
    return clip


class AWQ:
    """The AWQ backend."""

    name = "awq"
    needs_calibration = True

    def __init__(self, n_grid: int = 20, max_tokens: int = 4096, clip_tokens: int = 512, clip: bool = True) -> None:
        if n_grid < 2 or max_tokens < 1 or clip_tokens < 1:
            raise ValueError("n_grid must be >= 2 and the token budgets >= 1")
        self.n_grid, self.max_tokens, self.clip_tokens, self.clip = n_grid, max_tokens, clip_tokens, clip

    @torch.no_grad()
    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Search and fold scales, search clipping, then quantize every linear layer of the block."""
        lin = linears_of(block)
        xs: dict[str, list[Tensor]] = {n: [] for n in lin}
        layer_inputs(block, list(lin), inputs, kwargs, lambda n, x: xs[n].append(x))
        gen = torch.Generator().manual_seed(0)
        X = {}
        for n, parts in xs.items():
            allx = torch.cat(parts, 0)
            idx = torch.randperm(allx.shape[0], generator=gen)[:self.max_tokens]
            X[n] = allx[idx]
        del xs
        mods = dict(block.named_modules())
        stats: dict[str, Any] = {}
        for prev, layers in scale_groups(block):
            s, a, loss = search_scale(X[layers[0]], [weight_of(lin[n]) for n in layers], cfg, self.n_grid)
            p = mods[prev]
            p.weight.div_(s.view(-1, *([1] * (p.weight.dim() - 1))).to(p.weight.dtype))
            if getattr(p, "bias", None) is not None:
                p.bias.div_(s)
            for n in layers:
                lin[n].weight.mul_(s.to(lin[n].weight.dtype))
                X[n] = X[n] / s
            for n in layers:
                stats[n] = {"alpha": a, "scale_loss": loss}
        for name, layer in lin.items():
            w = weight_of(layer)
            clip = search_clip(X[name][:self.clip_tokens], w, cfg, self.n_grid) if self.clip else None
            codes, scales, zeros = rtn(w, cfg, clip)
            q = quantized_layer(layer, codes, scales, zeros, cfg)
            stats.setdefault(name, {})["weight_err"] = float((q.dequantized() - w).pow(2).sum())
            replace(block, name, q)
        return stats
