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
    calibration_dtype, inline_pass, layer_inputs, linears_of, quantized_layer, replace, sequential_groups, set_weight,
    shape_of, weight_of,
)
from mdq_quantkit.quant import dequantize, group_params, rtn


def _hinv_upper(H: Tensor, damp: float) -> tuple[Tensor, float]:
    """Return (the upper Cholesky factor R of (H + lambda I)^-1, lambda), raising lambda until H is positive definite.

    One factorization: with J the order-reversing permutation, J H J = L L^T gives H = U U^T for
    the upper triangular U = J L J, so H^-1 = R^T R with R = U^-1 = J L^-1 J, upper triangular
    with a positive diagonal: the factor sought (the same, to float rounding, as Cholesky-factoring
    the explicit inverse, in one factorization and one triangular solve instead of three steps).
    """
    mean = float(torch.diag(H).mean())
    for factor in (1, 10, 100):
        lam = damp * factor * mean
        Hd = H.flip(0, 1)
        Hd.diagonal().add_(lam)
        L, info = torch.linalg.cholesky_ex(Hd)
        del Hd  # the quantizer's peak is here, on the widest layer: hold as few n x n copies as possible
        if int(info) == 0:
            eye = torch.eye(H.shape[0], dtype=H.dtype)
            inv = torch.linalg.solve_triangular(L, eye, upper=False)
            del L, eye
            return inv.flip(0, 1), lam
    raise ValueError(f"the Hessian is not positive definite even with damping {damp * 100:g} x mean(diag H); "
                     f"give more calibration samples or a larger damp")


def gptq_quantize(W: Tensor, H: Tensor, cfg: QuantConfig, *, blocksize: int = 128, damp: float = 0.01,
                  act_order: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Return (codes, scales, zeros) for weight W (out, in) given the input Hessian H (in, in)."""
    codes, scales, zeros, _ = gptq_keep(W, H, cfg, None, blocksize=blocksize, damp=damp, act_order=act_order)
    return codes, scales, zeros


def weak_columns(W: Tensor, H: Tensor, cfg: QuantConfig, k: int) -> Tensor:
    """Return the k input columns with the largest H_jj * ||W[:, j] - RTN(W)[:, j]||^2, sorted (OWQ's weak columns)."""
    codes, s, z = rtn(W.float(), cfg)
    err = (dequantize(codes, s, z, cfg) - W.float()).pow(2).sum(0)
    return torch.topk(torch.diag(H).float() * err, min(k, W.shape[1])).indices.sort().values


def gptq_keep(W: Tensor, H: Tensor, cfg: QuantConfig, keep: Tensor | None, *, blocksize: int = 128,
              damp: float = 0.01, act_order: bool = False,
              solve: dict[str, Any] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """GPTQ leaving the input columns `keep` in float; return (codes, scales, zeros, kept values (out, len(keep))).

    Kept columns are taken last, so the error of every quantized column is compensated on them
    exactly (they are never rounded); their codes are their group's zero point (they dequantize
    to 0) and the groups' ranges are taken without them. `keep` None or empty is plain GPTQ.
    A `solve` dict receives the damping lambda used and each row's sum of squared scaled errors,
    which is that row's (w - q) (H + lambda I) (w - q)^T: the objective, at no extra matmul.
    """
    W = W.clone().float()
    H = H.clone().float()
    out_f, n = W.shape
    g, G = cfg.group(n), cfg.groups(n)
    keep = torch.zeros(0, dtype=torch.int64) if keep is None else torch.as_tensor(keep, dtype=torch.int64).unique()
    if keep.numel() and (int(keep.min()) < 0 or int(keep.max()) >= n):
        raise ValueError(f"kept columns must be input columns in [0, {n}), got {keep.tolist()}")
    kept = torch.zeros(n, dtype=torch.bool)
    kept[keep] = True
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    scales = torch.zeros(out_f, G)
    zeros = torch.zeros(out_f, G)
    static = act_order or bool(keep.numel())
    if static:  # static groups: every group's range from the original weights, fixed up front
        for j in range(G):
            part, mask = W[:, j * g:(j + 1) * g], ~kept[j * g:(j + 1) * g]
            some = bool(mask.any()) and not bool(mask.all())  # a gather only where some columns are kept
            scales[:, j], zeros[:, j] = group_params(part[:, mask] if some else part, cfg)
        rest = (~kept).nonzero().squeeze(1)
        if act_order:
            rest = rest[torch.argsort(torch.diag(H)[rest], descending=True)]
        perm = torch.cat([rest, keep])
        H = H[perm]  # one step at a time: two n x n copies alive, not three
        H = H[:, perm]
    else:
        perm = torch.arange(n)
    Hinv, lam = _hinv_upper(H, damp)
    del H
    # columns as contiguous rows: every per-column step below reads and writes whole rows (and
    # permuting rows is a copy of contiguous runs, where permuting W's columns was a slow gather)
    Wt = W.t().contiguous()
    del W
    if static:
        Wt = Wt[perm]
    Qt = torch.zeros_like(Wt)
    St, Zt = scales.t().contiguous(), zeros.t().contiguous()
    Vt = torch.zeros(keep.numel(), out_f)
    cols = perm.tolist()
    is_kept = kept.tolist()
    maxq = cfg.maxq
    s_rows, z_rows, q_rows = St.unbind(0), Zt.unbind(0), Qt.unbind(0)  # row views, taken once
    row_err = torch.zeros(out_f, dtype=torch.float64)
    for i1 in range(0, n, blocksize):
        i2 = min(i1 + blocksize, n)
        W1 = Wt[i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        diag = torch.diag(Hinv1).tolist()
        w_rows, e_rows = W1.unbind(0), Err1.unbind(0)
        for i in range(i2 - i1):
            col = cols[i1 + i]
            gi = col // g
            if is_kept[col]:  # exact: no error to spread, and it has taken every earlier column's
                Qt[i1 + i] = Zt[gi]
                Vt[i1 + i - (n - keep.numel())] = W1[i]
                continue
            if not static and col % g == 0:
                # the group's range from the weights as updated so far (this block's and the rest)
                St[gi], Zt[gi] = group_params(torch.cat([W1[i:], Wt[i2:]], 0)[:g].t(), cfg)
            s, z, w, q, err = s_rows[gi], z_rows[gi], w_rows[i], q_rows[i1 + i], e_rows[i]
            # in place into the code and error rows: this loop runs once per input column, so
            # every temporary it does not allocate is time saved (same operations, same order)
            torch.div(w, s, out=q).round_().add_(z).clamp_(0, maxq)
            torch.sub(q, z, out=err).mul_(s)
            torch.sub(w, err, out=err).div_(diag[i])  # (w - s (q - z)) / d, exactly
            if i + 1 < i2 - i1:  # row i is done: only the rows after it take its error
                W1[i + 1:].addr_(Hinv1[i, i + 1:], err, alpha=-1)
        Wt[i2:].addmm_(Hinv[i1:i2, i2:].t(), Err1, alpha=-1)
        row_err += Err1.pow(2).sum(0)
    if solve is not None:
        solve.update(damping=lam, row_objective=row_err)
    if static:
        codes = torch.empty_like(Qt)
        codes[perm] = Qt
    else:
        codes = Qt
    scales, zeros = St.t().contiguous(), Zt.t().contiguous()
    return codes.t().long(), scales, zeros, Vt.t().contiguous()


class GPTQ:
    """The GPTQ backend: per block, layers sharing an input are quantized together, in forward order.

    With `true_sequential` (the default, as in the reference implementation), the Hessian of
    each group is measured on inputs that already went through the quantized earlier groups
    of the same block (q/k/v, then o, then gate/up, then down), all in one forward per block
    (`layerwise.inline_pass`), which also yields the inputs of the next block. Layers sharing an
    input share one Hessian and are quantized as one matrix (their rows stacked): GPTQ treats
    rows independently, so this is the same result in one column loop instead of several.
    Without `true_sequential`, every group's Hessian comes from the block's unquantized forward.
    With `keep_columns` (a share of each layer's input columns, e.g. 0.01: at most that share, at
    least one column), the weak columns (`weak_columns`) stay in float16 and absorb the other
    columns' error (`gptq_keep`). `calibration` is the dtype of the calibration forward's matmuls
    (`layerwise.calibration_dtype`): auto by default, which is bfloat16 where the hardware multiplies
    it natively (a CUDA GPU; a CPU with AVX512-BF16 or AMX: what gptqmodel calibrates in there) and
    float32 elsewhere. On an AVX512-BF16 CPU bfloat16 quantized SmolLM2 at w4g128 1.5x faster than
    float32, at a perplexity level with float32's over three calibration draws. Under bfloat16 each
    batch's Gram is bfloat16 too, summed in float64; the weights GPTQ rounds, the summed Hessians
    and the solve stay float32 either way. `settings()` names the dtype a run used, and a saved
    checkpoint records it.
    """

    name = "gptq"
    needs_calibration = True

    def __init__(self, blocksize: int = 128, damp: float = 0.01, act_order: bool = True,
                 true_sequential: bool = True, keep_columns: float = 0.0, calibration: str = "auto") -> None:
        if blocksize < 1 or not 0 < damp < 1:
            raise ValueError(f"blocksize must be >= 1 and damp in (0, 1), got {blocksize}, {damp}")
        if not 0.0 <= keep_columns <= 0.5:
            raise ValueError(f"keep_columns is the share of input columns kept in float16, in [0, 0.5]; got {keep_columns}")
        calibration_dtype(calibration)  # an unknown name is refused here, before any work
        self.blocksize, self.damp, self.act_order = blocksize, damp, act_order
        self.true_sequential, self.keep_columns, self.calibration = true_sequential, keep_columns, calibration
        self.used: str | None = None  # the calibration dtype the last block ran in (auto resolved); None before a run

    def settings(self) -> dict[str, Any]:
        """Return the options this backend quantizes with, auto resolved to the dtype the last run used.

        Before any block has run, `calibration_dtype` is None where it depends on the hardware (auto
        is resolved per run, by the device of the inputs), not a guess.
        """
        used = self.used or (None if self.calibration == "auto" else self.calibration)
        return {"blocksize": self.blocksize, "damp": self.damp, "act_order": self.act_order,
                "true_sequential": self.true_sequential, "keep_columns": self.keep_columns,
                "calibration": self.calibration, "calibration_dtype": used if self.true_sequential else "float32"}

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Quantize the block's layers with GPTQ, group by group; return per-layer stats."""
        return self.quantize_block_forward(block, inputs, kwargs, cfg)[0]

    def quantize_block_forward(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                               cfg: QuantConfig) -> tuple[dict[str, Any], list[Tensor] | None]:
        """Quantize the block; return (per-layer stats, the block's outputs if they came for free, else None)."""
        groups = sequential_groups(block, inputs[0], kwargs)
        lin = linears_of(block)
        stats: dict[str, Any] = {}
        done: dict[str, Any] = {}
        if self.true_sequential:
            def on_group(gi: int, xtx: Tensor, tokens: int) -> None:
                new = self._quantize(lin, groups[gi], xtx, tokens, cfg, stats)
                for name, (_q, deq) in new.items():
                    set_weight(lin[name], deq)  # the rest of this forward goes through the quantized weight
                done.update(new)

            dtype = calibration_dtype(self.calibration, inputs[0].device.type)
            self.used = "float32" if dtype is None else str(dtype).removeprefix("torch.")
            outputs: list[Tensor] | None = inline_pass(block, groups, inputs, kwargs, on_group, autocast=dtype)
        else:
            H = {g[0]: torch.zeros(shape_of(lin[g[0]])[1], shape_of(lin[g[0]])[1]) for g in groups}
            seen = dict.fromkeys(H, 0)

            def add(name: str, x: Tensor) -> None:
                seen[name] += x.shape[0]
                H[name].addmm_(x.t(), x)

            layer_inputs(block, list(H), inputs, kwargs, add, stop=True)
            for g in groups:
                done.update(self._quantize(lin, g, H[g[0]], seen[g[0]], cfg, stats))
            outputs = None
        for name, (q, _deq) in done.items():
            replace(block, name, q)
        return stats, outputs

    def _quantize(self, lin: dict[str, nn.Module], names: list[str], xtx: Tensor, tokens: int, cfg: QuantConfig,
                  stats: dict[str, Any]) -> dict[str, tuple[nn.Module, Tensor]]:
        if tokens == 0:
            raise ValueError(f"no calibration input reached layer {names[0]!r}; GPTQ needs its inputs "
                             f"(give calibration samples that exercise it)")
        h = xtx.mul_(2.0 / tokens)  # in place: the pass hands over its sum, and the widest layer sets the peak
        ws = [weight_of(lin[n]) for n in names]
        W = torch.cat(ws)
        keep = None
        if self.keep_columns:
            # floor: the share is a budget the layer must not exceed (one column at least, or none would be kept)
            keep = weak_columns(W, h, cfg, max(1, int(self.keep_columns * W.shape[1])))
        solve: dict[str, Any] = {}
        codes, scales, zeros, vals = gptq_keep(W, h, cfg, keep, blocksize=self.blocksize, damp=self.damp,
                                               act_order=self.act_order, solve=solve)
        vals = vals.half()
        # what the QuantLinear will compute (scales and kept values are stored in float16), without packing
        deq = dequantize(codes, scales.half(), zeros, cfg)
        if keep is not None:
            deq[:, keep] = vals.float()
        out, r = {}, 0
        live = torch.diag(h) != 0  # the columns H sees: a dead column's error costs nothing
        for name, w in zip(names, ws, strict=True):
            rows = slice(r, r + w.shape[0])
            r += w.shape[0]
            d = deq[rows] - w
            # (w - q) H (w - q)^T = the solve's damped objective - lambda |w - q|^2 over the live
            # columns, which spares an (out x in x in) matmul per layer
            weight_err = float(d.pow(2).sum())
            proxy = float(solve["row_objective"][rows].sum()) - solve["damping"] * float(d[:, live].pow(2).sum())
            stats[name] = {"weight_err": weight_err, "proxy_loss": max(proxy, 0.0)}
            q = quantized_layer(lin[name], codes[rows], scales[rows], zeros[rows], cfg)
            if keep is not None:
                q.keep_columns(keep, vals[rows])
            out[name] = (q, deq[rows])
        return out
