"""Manifold distortion (docs/concepts.md §7): MD(w_j^Q) = ||(I - U U^T)(w_j^Q - w_j)|| / ||n_j||.

U spans row j's local tangent directions (tangent.py) and n_j = (I - U U^T) w_j is the row's
own normal component. MD is therefore the part of the quantization error that leaves the
manifold, relative to the part of the row that lies off its tangent plane: 0 when the error
stays in the tangent plane, 1 when it changes the row's normal component by its own size.
Both norms are over the whole row (the direct sum of its sub-block planes).

(n_j is the normal part of w_j itself, not of w_j - mu_j: the centred offset lies in the span
of the neighbourhood, which a tangent basis taken to 95% of the variance can exhaust,
making ||n_j|| exactly 0 on ordinary random-looking rows.)

`MDCalculator.compute(model)` on a float model gives the *pre*-quantization MD: the distortion
round-to-nearest at the calculator's bits / group size would cause (nothing is changed).
`compute(quantized, reference=float_model)` gives the *post*-quantization MD of the weights a
quantizer actually produced.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .tangent import blocks, check_weight, local_tangents

LAYER_TYPES = {
    "attention": re.compile(r"(q_proj|k_proj|v_proj|o_proj|c_attn|attn\.c_proj|query|key|value|attention\.output\.dense)$"),
    "mlp": re.compile(r"(gate_proj|up_proj|down_proj|c_fc|mlp\.c_proj|intermediate\.dense|(?<!attention\.)output\.dense|"
                      r"w1|w2|w3|fc1|fc2)$"),
}


def layer_type(name: str) -> str:
    """Return 'attention', 'mlp' or 'other' for a module name."""
    for kind, pat in LAYER_TYPES.items():
        if pat.search(name):
            return kind
    return "other"


@dataclass
class RowMD:
    """Per-row results of one layer."""

    md: Tensor  # (out,) MD per row
    normal_err: Tensor  # (out,) ||(I - UU^T)(w_q - w)||
    normal_norm: Tensor  # (out,) ||n||
    err: Tensor  # (out,) ||w_q - w||
    rank: Tensor  # (out,) mean tangent dimension over the row's sub-blocks

    def summary(self) -> dict[str, float]:
        """Mean / median / p95 MD and the plain relative weight error."""
        return {"md": float(self.md.mean()), "md_median": float(self.md.median()),
                "md_p95": float(self.md.quantile(0.95)), "tangent_rank": float(self.rank.float().mean()),
                "rel_err": float(self.err.norm() / max(float(self.normal_norm.norm()), 1e-30))}


def _geometry(w: Tensor, rows: Tensor | None, block_size: int, k: int, var: float, batch: int,
              fn: Callable[[Tensor, list[slice], Tensor, Any], None], refine: bool = False) -> None:
    """Fit tangents block by block and call fn(global row ids, column slices, the rows (B, q, c), tangents).

    With `refine`, the planes come from a mixture of probabilistic PCA fitted to each sub-block (mppca.py).
    """
    from .mppca import MIN_ROWS, fit_mppca

    # a mixture needs more rows per sub-block than a neighbourhood: fold short row blocks accordingly
    for rs, cs, X in blocks(w, block_size, max(k, MIN_ROWS - 1) if refine else k):
        ids = torch.arange(rs.start, rs.stop, device=w.device)
        if rows is not None:
            ids = rows[(rows >= rs.start) & (rows < rs.stop)]
            if not ids.numel():
                continue
        local = ids - rs.start
        for i in range(0, X.shape[0], batch):
            part = X[i:i + batch]
            if refine:
                T = fit_mppca(part)
                T = dataclasses.replace(T, assign=T.assign[:, local])
            else:
                T = local_tangents(part, k, var, query=local)
            fn(ids, cs[i:i + batch], part[:, local], T)


@torch.no_grad()
def md_rows(w: Tensor, wq: Tensor, *, block_size: int = 256, k: int = 15, var: float = 0.95,
            what: str = "weight", batch: int = 16, rows: Tensor | None = None, refine: bool = False) -> RowMD:
    """Return the MD of every row (or of `rows`) of the quantized weight wq against the original w (both (out, in)).

    `refine` takes the tangent planes from a mixture of PPCA per sub-block instead of local PCA.
    """
    if wq.shape != w.shape:
        raise ValueError(f"{what}: quantized weight has shape {tuple(wq.shape)}, the original {tuple(w.shape)}")
    w = w.detach().float()
    wq = wq.detach().float().to(w.device)
    check_weight(w, what, k, block_size)
    if not bool(torch.isfinite(wq).all()):
        raise ValueError(f"{what}: the quantized weight has NaN / Inf entries")
    if rows is not None:
        rows = torch.as_tensor(rows, device=w.device).long().unique()
        if rows.numel() and (rows.min() < 0 or rows.max() >= w.shape[0]):
            raise ValueError(f"{what}: row ids must be in [0, {w.shape[0]}), got {int(rows.min())}..{int(rows.max())}")
    sel = torch.arange(w.shape[0], device=w.device) if rows is None else rows
    pos = torch.full((w.shape[0],), -1, dtype=torch.long, device=w.device)
    pos[sel] = torch.arange(sel.numel(), device=w.device)
    num = torch.zeros(sel.numel(), device=w.device, dtype=torch.float64)
    den, rank, nblk = torch.zeros_like(num), torch.zeros_like(num), torch.zeros_like(num)
    e = wq - w

    def add(ids: Tensor, cols: list[slice], Xq: Tensor, T: Any) -> None:
        E = torch.stack([e[ids, c] for c in cols])
        p = pos[ids]
        num[p] += T.normal_sq(E).sum(0).double()
        den[p] += T.normal_sq(Xq).sum(0).double()
        rank[p] += T.rank.sum(0).double()
        nblk[p] += len(cols)

    _geometry(w, rows, block_size, k, var, batch, add, refine)
    tiny = den <= w[sel].pow(2).sum(1).double() * 1e-12
    if bool(tiny.any()):
        r = int(sel[tiny.nonzero()[0]])
        raise ValueError(f"{what}: row {r} lies in its tangent space (||n|| = 0, e.g. a zero row); "
                         f"MD is undefined there: exclude the layer or fix the weights")
    return RowMD(md=(num / den).sqrt().float(), normal_err=num.sqrt().float(), normal_norm=den.sqrt().float(),
                 err=e[sel].norm(dim=1), rank=(rank / nblk).float())


@torch.no_grad()
def row_normals(w: Tensor, rows: Tensor, *, block_size: int = 256, k: int = 15, var: float = 0.95,
                what: str = "weight", batch: int = 16) -> Tensor:
    """Return n_j = (I - U U^T) w_j over the whole row, for each of `rows` (len(rows), in)."""
    w = w.detach().float()
    check_weight(w, what, k, block_size)
    rows = torch.as_tensor(rows, device=w.device).long()
    out = torch.zeros(rows.numel(), w.shape[1], device=w.device)
    pos = {int(r): i for i, r in enumerate(rows)}

    def add(ids: Tensor, cols: list[slice], Xq: Tensor, T: Any) -> None:
        n = T.normal(Xq)
        p = torch.tensor([pos[int(r)] for r in ids], device=w.device)
        for j, c in enumerate(cols):
            out[p, c] = n[j]

    _geometry(w, rows, block_size, k, var, batch, add)
    return out


def _linears(model: nn.Module) -> dict[str, nn.Module]:
    from transformers.pytorch_utils import Conv1D

    from mdq_quantkit.qlinear import QuantLinear

    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, Conv1D, QuantLinear))}


def weight(module: nn.Module) -> Tensor:
    """Return a layer's float weight (out, in): dequantized for a QuantLinear."""
    from mdq_quantkit.layerwise import weight_of
    from mdq_quantkit.qlinear import QuantLinear

    return module.dequantized() if isinstance(module, QuantLinear) else weight_of(module)


@dataclass
class MDCalculator:
    """Block-wise MD of a model's linear layers, per layer and per layer type."""

    layer_type: str = "all"
    block_size: int = 256
    k: int = 15
    var: float = 0.95
    bits: int = 4
    group_size: int = 128
    exclude: tuple[str, ...] = ("lm_head",)
    device: str | None = None
    refine: bool = False
    per_row: dict[str, RowMD] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.layer_type not in ("all", *LAYER_TYPES):
            raise ValueError(f"layer_type must be 'all' or one of {sorted(LAYER_TYPES)}, got {self.layer_type!r}")

    def layers(self, model: nn.Module) -> dict[str, nn.Module]:
        """Return the linear layers this calculator measures, refusing a model with none."""
        lin = {n: m for n, m in _linears(model).items()
               if not any(n == x or n.endswith("." + x) for x in self.exclude)
               and (self.layer_type == "all" or layer_type(n) == self.layer_type)}
        if not lin:
            raise ValueError(f"the model has no linear layers of type {self.layer_type!r} to measure MD on")
        return lin

    def compute(self, model: nn.Module, reference: nn.Module | None = None,
                progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
        """Return {"layers": {name: summary}, "types": {type: mean MD}, "md": mean, "mode": "pre"|"post"}."""
        from mdq_quantkit.config import QuantConfig
        from mdq_quantkit.quant import dequantize, rtn

        lin = self.layers(model)
        ref = _linears(reference) if reference is not None else None
        out: dict[str, Any] = {}
        self.per_row = {}
        for i, (name, mod) in enumerate(lin.items()):
            if progress:
                progress(i, len(lin), name)
            if ref is not None:
                if name not in ref:
                    raise ValueError(f"the reference model has no layer {name!r}; pass the float model it was quantized from")
                w, wq = weight(ref[name]), weight(mod)
            else:
                w = weight(mod)
                cfg = QuantConfig(self.bits, min(self.group_size, w.shape[1]))
                wq = dequantize(*rtn(w, cfg), cfg)
            if self.device:
                w, wq = w.to(self.device), wq.to(self.device)
            res = md_rows(w, wq, block_size=self.block_size, k=self.k, var=self.var, what=name, refine=self.refine)
            self.per_row[name] = res
            out[name] = {**res.summary(), "type": layer_type(name), "shape": list(w.shape)}
        if progress:
            progress(len(lin), len(lin), "done")
        types: dict[str, list[float]] = {}
        for v in out.values():
            types.setdefault(v["type"], []).append(v["md"])
        return {"mode": "pre" if reference is None else "post", "layers": out,
                "types": {t: sum(v) / len(v) for t, v in types.items()},
                "md": sum(v["md"] for v in out.values()) / len(out),
                "params": {"block_size": self.block_size, "k": self.k, "var": self.var, "refine": self.refine,
                           **({"bits": self.bits, "group_size": self.group_size} if reference is None else {})}}
