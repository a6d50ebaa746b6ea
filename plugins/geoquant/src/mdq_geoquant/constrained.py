"""MD-constrained quantization: a wrapper over any registered quantizer backend (docs/concepts.md §7).

The inner backend quantizes each block as usual; then, for the rows the classifiers marked:
- functional rows whose MD exceeds tau_func are kept at higher precision (float16 rows in the
  QuantLinear), which brings their MD to 0;
- sensitive rows whose MD is below tau_priv are pushed off the manifold: the row is moved
  along its own normal n_j by the smallest step t ||n_j|| (t on a grid) whose re-quantized
  row (same scales and zero points) reaches MD >= tau_priv, then stored as codes.
tau_func, tau_priv come from the control state's `geoquant` operator (defaults 0.4 / 0.6), so
an MDQ package can change them; explicit arguments win over the state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .classify import Outliers
from .md import md_rows, row_normals
from .params import OPERATOR, PARAMS, param  # noqa: F401 - re-exported: callers read them here

STEPS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


class MDConstrained:
    """Wraps a backend: quantize as it does, then hold functional rows under tau_func and push sensitive ones over tau_priv."""

    def __init__(self, backend: Any, model: nn.Module, outliers: Outliers, state: Any = None, *,
                 tau_func: float | None = None, tau_priv: float | None = None, block_size: int = 256, k: int = 15,
                 var: float = 0.95) -> None:
        from mdq_quantkit.layerwise import blocks_of

        self.inner, self.outliers = backend, outliers
        self.name = f"md-{backend.name}"
        self.needs_calibration = backend.needs_calibration
        self.tau_func = param(state, "tau_func") if tau_func is None else float(tau_func)
        self.tau_priv = param(state, "tau_priv") if tau_priv is None else float(tau_priv)
        self.block_size, self.k, self.var = block_size, k, var
        prefix, blocks = blocks_of(model)
        self.prefix = {id(b): f"{prefix}.{i}." for i, b in enumerate(blocks)}
        known = {n for n, _ in model.named_modules()}
        for cls in ("functional", "sensitive"):
            for n in getattr(outliers, cls):
                if n not in known:
                    raise ValueError(f"outlier rows name layer {n!r}, which this model does not have")

    def _marked(self, block: nn.Module) -> dict[str, tuple[Tensor, Tensor]]:
        from mdq_quantkit.layerwise import linears_of

        pre = self.prefix.get(id(block), "")
        marked = {n: (self.outliers.functional.get(pre + n, torch.zeros(0, dtype=torch.long)),
                      self.outliers.sensitive.get(pre + n, torch.zeros(0, dtype=torch.long)))
                  for n in linears_of(block)}
        return {n: fs for n, fs in marked.items() if fs[0].numel() or fs[1].numel()}

    def quantize_block_forward(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                               cfg: Any) -> tuple[dict[str, Any], list[Tensor] | None]:
        """Quantize the block; its outputs come back only when no row of it was constrained (else they are stale)."""
        if not self._marked(block) and hasattr(self.inner, "quantize_block_forward"):
            return self.inner.quantize_block_forward(block, inputs, kwargs, cfg)
        return self.quantize_block(block, inputs, kwargs, cfg), None

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any], cfg: Any) -> dict[str, Any]:
        """Quantize with the inner backend, then enforce the MD constraints on the block's outlier rows."""
        from mdq_quantkit.layerwise import weight_of

        marked = self._marked(block)
        orig = {n: weight_of(block.get_submodule(n)).clone() for n in marked}
        stats = self.inner.quantize_block(block, inputs, kwargs, cfg)
        for n, (func, sens) in marked.items():
            stats.setdefault(n, {}).update(self._constrain(block, n, orig[n], func, sens))
        return stats

    def _geo(self, w: Tensor) -> dict[str, Any]:
        # a small layer gets one sub-block instead of an error: the wrapper must quantize every layer
        return {"block_size": min(self.block_size, max(w.shape)), "k": self.k, "var": self.var}

    def _md(self, w: Tensor, wq: Tensor, rows: Tensor, what: str) -> Tensor:
        return md_rows(w, wq, rows=rows, what=what, **self._geo(w)).md

    def _constrain(self, block: nn.Module, name: str, w: Tensor, func: Tensor, sens: Tensor) -> dict[str, Any]:
        from mdq_quantkit.layerwise import replace
        from mdq_quantkit.qlinear import QuantLinear
        from mdq_quantkit.quant import group_index

        q: QuantLinear = block.get_submodule(name)
        wq = q.dequantized()
        out: dict[str, Any] = {}
        if func.numel():
            md = self._md(w, wq, func, name)
            over = func[md > self.tau_func]
            kept = torch.cat([q.keep_idx.cpu(), over]).unique()
            q.keep(kept, w[kept])
            out.update(functional_rows=int(func.numel()), functional_kept=int(over.numel()),
                       functional_md_before=float(md.mean()))
        if sens.numel():
            md = self._md(w, wq, sens, name)
            low = sens[md < self.tau_priv]
            reached = torch.zeros(low.numel(), dtype=torch.bool)
            if low.numel():
                n = row_normals(w, low, what=name, **self._geo(w))
                gidx = group_index(w.shape[1], q.cfg)
                s, z = q.scales.float()[low][:, gidx], q.zeros.float()[low][:, gidx]
                codes = q.codes()
                best = codes[low].clone()
                for t in STEPS:
                    c = torch.clamp(torch.round((w[low] + t * n) / s) + z, 0, q.cfg.maxq)
                    trial = wq.clone()
                    trial[low] = s * (c - z)
                    ok = (self._md(w, trial, low, name) >= self.tau_priv) & ~reached
                    best[ok] = c[ok].long()
                    reached |= ok
                    if bool(reached.all()):
                        break
                codes[low] = best
                new = QuantLinear.from_codes(codes, q.scales.float(), q.zeros, q.cfg,
                                             None if q.bias is None else q.bias, kernel=q.kernel_request)
                new.keep(q.keep_idx.cpu(), q.keep_rows.float())
                replace(block, name, new)
                q = new
            out.update(sensitive_rows=int(sens.numel()), sensitive_pushed=int(reached.sum()),
                       sensitive_unreached=int((~reached).sum()), sensitive_md_before=float(md.mean()))
        final = q.dequantized()
        for cls, rows in (("functional", func), ("sensitive", sens)):
            if rows.numel():
                out[f"{cls}_md_after"] = float(self._md(w, final, rows, name).mean())
        return out
