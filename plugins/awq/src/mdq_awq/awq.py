"""AWQ (Lin et al., arXiv 2306.00978) as an mdq quantizer backend.

Objective (the paper's, section 3.2): for a group of linear layers that share one input and
whose per-input-channel scale s can be folded into the previous op (q/k/v after the attention
norm, gate/up after the MLP norm, down after up, o after v where the head layout allows),
choose s minimizing the change of the output of the whole module the scales act on,

    s* = argmin_s || F(X) - F_s(X) ||^2,   F_s: the module with each W of the group replaced by Q(W diag s) diag s^-1,

where F is the attention module for q/k/v, the MLP for gate/up, and the linear itself for o and
down. s = mean|x|^a / mean|w~|^(1-a) (normalized; w~ = |w| over its group's max), searched over
a grid of a in [0, 1). The search runs on a subsample: `grid_windows` whole calibration windows
for a module with attention or an MLP, `grid_tokens` tokens for a lone linear. s is folded into
the previous op (norm weight or linear rows divided by s) and the group's weights multiplied by
it, so the float model is unchanged. Then, per layer except q and k (whose outputs meet in a
softmax, where a per-layer error says little), a clipping search picks for each row and group
the max |w| (shrunk by up to 50%) minimizing that group's share of the output error on
`clip_tokens` tokens, and the layer is quantized round-to-nearest within the clipped range.
Architectures whose previous op cannot absorb s (e.g. GPT-2's fused attention) get the
clipping search only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.layerwise import linears_of, quantized_layer, replace, run_block, shape_of, weight_of
from mdq_quantkit.quant import dequantize, rtn

# (previous op, layers sharing its output) for Llama-style blocks
LLAMA_GROUPS = [("input_layernorm", ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
                ("self_attn.v_proj", ["self_attn.o_proj"]),
                ("post_attention_layernorm", ["mlp.gate_proj", "mlp.up_proj"]),
                ("mlp.up_proj", ["mlp.down_proj"])]
NO_CLIP = ("q_proj", "k_proj")


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


def parent_of(layers: list[str]) -> str:
    """Return the module whose output a group's scales are judged on: the layers' common parent, or the lone layer."""
    if len(layers) == 1:
        return layers[0]
    parts = [n.split(".") for n in layers]
    common = []
    for xs in zip(*parts, strict=False):
        if len(set(xs)) != 1:
            break
        common.append(xs[0])
    return ".".join(common)


def duo_scales(x_mean: Tensor, W: Tensor, cfg: QuantConfig, a: float) -> Tensor:
    """Return s = mean|x|^a / mean|w~|^(1-a), normalized so that max(s) * min(s) = 1."""
    g = cfg.group(W.shape[1])
    w_abs = W.abs()
    gmax = torch.cat([w_abs[:, c:c + g].amax(1, keepdim=True).expand(-1, min(g, W.shape[1] - c))
                      for c in range(0, W.shape[1], g)], 1).clamp(min=1e-8)
    w_mean = (w_abs / gmax).mean(0)
    s = (x_mean.pow(a) / w_mean.pow(1 - a).clamp(min=1e-4)).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


@torch.no_grad()
def search_scale(module_out: Any, Ws: dict[str, Tensor], set_w: Any, x_mean: Tensor, target: Tensor,
                 cfg: QuantConfig, n_grid: int = 20) -> tuple[Tensor, float, float]:
    """Return (s, best alpha, best loss): the grid point whose quantized group changes `module_out()` least.

    `set_w(name, W)` puts a weight into the module, `module_out()` runs it on the subsample, and
    `target` is its float output there. The weights are restored before returning.
    """
    W = torch.cat(list(Ws.values()), 0)
    best: tuple[Tensor, float, float] | None = None
    try:
        for i in range(n_grid):
            a = i / n_grid
            s = duo_scales(x_mean, W, cfg, a)
            for n, w in Ws.items():
                set_w(n, fake_quant(w * s, cfg) / s)
            loss = float((module_out() - target).float().pow(2).mean())
            if best is None or loss < best[2]:
                best = (s, a, loss)
    finally:
        for n, w in Ws.items():
            set_w(n, w)
    assert best is not None
    return best


def search_clip(X: Tensor, W: Tensor, cfg: QuantConfig, n_grid: int = 20, max_shrink: float = 0.5) -> Tensor:
    """Return the per-row, per-group clip value (out, G) minimizing each group's share of the layer's output error."""
    out_f, n = W.shape
    g, G = cfg.group(n), cfg.groups(n)
    clip = torch.empty(out_f, G)
    for j, c0 in enumerate(range(0, n, g)):
        Wg, Xg = W[:, c0:c0 + g], X[:, c0:c0 + g]
        amax = Wg.abs().amax(1).clamp(min=1e-8)
        Y = Xg @ Wg.t()
        best_err = torch.full((out_f,), float("inf"))
        best = amax.clone()
        part = QuantConfig(cfg.bits, Wg.shape[1], cfg.sym)
        for i in range(int(max_shrink * n_grid)):
            c = amax * (1 - i / n_grid)
            err = ((Y - Xg @ fake_quant(Wg, part, c.unsqueeze(1)).t()) ** 2).mean(0)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, c, best)
        clip[:, j] = best
    return clip


class AWQ:
    """The AWQ backend: scales judged on the output of the module they act on, then clipping, then RTN."""

    name = "awq"
    needs_calibration = True

    def __init__(self, n_grid: int = 20, grid_windows: int = 4, grid_tokens: int = 2048, clip_tokens: int = 512,
                 clip: bool = True, seed: int = 0) -> None:
        if n_grid < 2 or grid_windows < 1 or grid_tokens < 1 or clip_tokens < 1:
            raise ValueError("n_grid must be >= 2 and the subsample sizes >= 1")
        self.n_grid, self.grid_windows, self.grid_tokens = n_grid, grid_windows, grid_tokens
        self.clip_tokens, self.clip, self.seed = clip_tokens, clip, seed

    @torch.no_grad()
    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Search and fold scales, search clipping, then quantize every linear layer of the block."""
        lin = linears_of(block)
        mods = dict(block.named_modules())
        groups = scale_groups(block)
        gen = torch.Generator().manual_seed(self.seed)
        windows = sorted(torch.randperm(len(inputs), generator=gen)[:self.grid_windows].tolist())
        parents = {parent_of(layers) for _, layers in groups}
        seen = self._observe(block, inputs, kwargs, lin, {p: mods[p] for p in parents}, set(windows), gen)
        stats: dict[str, Any] = {}
        for prev, layers in groups:
            parent = parent_of(layers)
            calls = seen["calls"][parent]
            if isinstance(mods[parent], nn.Linear):  # a lone linear: any tokens will do
                x = torch.cat([c[0][0].reshape(-1, c[0][0].shape[-1]) for c in calls], 0)
                x = x[torch.randperm(x.shape[0], generator=gen)[:self.grid_tokens]]
                calls = [((x,), {})]

            def module_out(m: nn.Module = mods[parent], calls: list = calls) -> Tensor:
                outs = [m(*a, **k) for a, k in calls]
                return torch.cat([(o[0] if isinstance(o, tuple) else o).reshape(-1, o_width(o)) for o in outs], 0)

            target = module_out()
            Ws = {n: weight_of(lin[n]) for n in layers}
            x_mean = seen["abs_sum"][layers[0]] / seen["count"][layers[0]]
            s, a, loss = search_scale(module_out, Ws, lambda n, w: setattr(lin[n].weight, "data", w.to(lin[n].weight.dtype)),
                                      x_mean, target, cfg, self.n_grid)
            p = mods[prev]
            p.weight.div_(s.view(-1, *([1] * (p.weight.dim() - 1))).to(p.weight.dtype))
            if getattr(p, "bias", None) is not None:
                p.bias.div_(s)
            for n in layers:
                lin[n].weight.mul_(s.to(lin[n].weight.dtype))
                seen["clip_x"][n] = seen["clip_x"][n] / s
                stats[n] = {"alpha": a, "scale_loss": loss}
        for name, layer in lin.items():
            w = weight_of(layer)
            clip = None
            if self.clip and not name.endswith(NO_CLIP):
                clip = search_clip(seen["clip_x"][name], w, cfg, self.n_grid)
            codes, scales, zeros = rtn(w, cfg, clip)
            q = quantized_layer(layer, codes, scales, zeros, cfg)
            stats.setdefault(name, {})["weight_err"] = float((q.dequantized() - w).pow(2).sum())
            replace(block, name, q)
        return stats

    def _observe(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any], lin: dict[str, nn.Module],
                 parents: dict[str, nn.Module], windows: set[int], gen: torch.Generator) -> dict[str, Any]:
        """Run the float block once: per layer, sum |x| per channel and a token subsample; per parent, its calls on `windows`."""
        abs_sum: dict[str, Tensor] = {}
        count: dict[str, int] = dict.fromkeys(lin, 0)
        pool: dict[str, list[Tensor]] = {n: [] for n in lin}
        calls: dict[str, list] = {p: [] for p in parents}
        per_window = -(-self.clip_tokens // max(1, len(inputs)))
        current = {"i": -1}

        def on_layer(_m: nn.Module, a: tuple, n: str) -> None:
            x = a[0].reshape(-1, a[0].shape[-1]).float()
            abs_sum[n] = x.abs().sum(0) + abs_sum.get(n, 0)
            count[n] += x.shape[0]
            pool[n].append(x[torch.randperm(x.shape[0], generator=gen)[:per_window]])

        def on_parent(_m: nn.Module, a: tuple, k: dict, p: str) -> None:
            if current["i"] in windows:
                calls[p].append((a, dict(k)))

        hooks = [m.register_forward_pre_hook(lambda m, a, n=n: on_layer(m, a, n)) for n, m in lin.items()]
        hooks += [m.register_forward_pre_hook(lambda m, a, k, p=p: on_parent(m, a, k, p), with_kwargs=True)
                  for p, m in parents.items()]
        try:
            for i, x in enumerate(inputs):
                current["i"] = i
                run_block(block, x, kwargs)
        finally:
            for h in hooks:
                h.remove()
        clip_x = {n: torch.cat(v, 0)[:self.clip_tokens] for n, v in pool.items() if v}
        return {"abs_sum": abs_sum, "count": count, "clip_x": clip_x, "calls": calls}


def o_width(o: Any) -> int:
    """Return the last dimension of a module's output (a tensor, or the first element of a tuple)."""
    return (o[0] if isinstance(o, tuple) else o).shape[-1]
