"""Mixed precision by outlier rows: score every row of every quantized layer, keep the top share in float16.

A row (one output channel) kept in float16 costs 16 bits per weight instead of `bits`, and its
quantization error becomes 0. Which rows earn that budget is the selector's question:

  random        uniform random scores: the floor any selector must beat
  weight-error  ||w^Q_j - w_j||^2: the rows the quantizer got most wrong, in weight space
  hessian       sum_i H_ii (w^Q_ji - w_ji)^2 with H_ii the mean squared input of column i:
                the diagonal-Hessian saliency of SpQR and OWQ (the layer's output error the
                row causes, input columns taken as uncorrelated)
  kfac          E[g_j^2] (w^Q_j - w_j) H (w^Q_j - w_j)^T: the row's output error under the layer's full
                input Hessian H = E[x x^T] (the error GPTQ minimizes), weighted by how much the loss
                depends on that output (the mean squared loss gradient g_j of output j): the
                Kronecker-factored Fisher estimate of the loss change
  md            the row's manifold distortion MD (GeoQuant's geometry alone)
  geoquant      GeoQuant's functional class: the Fisher estimate of the loss change of the
                row's quantization, 1/2 sum_i F_ji (w^Q_ji - w_ji)^2, among the rows whose MD
                is above the layer's `md_percentile`-th percentile (tau_func calibrated from the
                data instead of fixed); md_percentile 0 leaves the Fisher score alone

Every score uses the weights the backend actually produced (w^Q), after it quantized the block.
The budget `keep` is a share of the quantized weights. Scope "layer" keeps the top `keep` share
of every layer's rows (a percentile threshold per layer, so every selector keeps the same rows
per layer and writes the same file size); scope "model" draws one threshold over every layer's
scores until `keep` of all quantized weights are kept.

The kept rows are written after the whole model is quantized: the backend's own work (GPTQ's
Hessians, its error feedback, the next block's inputs) is exactly the plain run's, so the rows
any number of selectors choose can be compared on one quantization.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

SCOPES = ("layer", "model")
# backends whose float weights stay the model's own until quantized, so the row to keep is the original
# one; AWQ, for one, folds per-channel scales into the previous op first
KEEPS_FLOAT_ROWS = ("rtn", "gptq")


@dataclass
class RowContext:
    """What a scorer may use for one layer: original and quantized weight (out, in), and optional statistics."""

    name: str
    w: Tensor
    wq: Tensor
    h_diag: Tensor | None = None  # (in,) mean squared input of each column
    h: Tensor | None = None  # (in, in) mean x x^T of the layer's inputs
    fisher: Tensor | None = None  # (out, in) empirical diagonal Fisher of the float model
    out_grad: Tensor | None = None  # (out,) mean squared loss gradient of each output, on the float model
    _md: Tensor | None = field(default=None, repr=False)

    def md(self) -> Tensor:
        """Return the MD of every row of wq (computed once)."""
        if self._md is None:
            from .md import md_rows

            self._md = md_rows(self.w, self.wq, block_size=min(256, max(self.w.shape)), what=self.name).md.float()
        return self._md


class RandomScore:
    """Uniform random scores from a seeded generator (consumed in layer order)."""

    name, needs = "random", frozenset()

    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) random scores."""
        return torch.rand(ctx.w.shape[0], generator=self.gen)


class WeightErrorScore:
    """||w^Q_j - w_j||^2 per row."""

    name, needs = "weight-error", frozenset()

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) squared weight errors."""
        return (ctx.wq - ctx.w).pow(2).sum(1)


class HessianScore:
    """sum_i H_ii (w^Q_ji - w_ji)^2 per row: the diagonal-Hessian saliency."""

    name, needs = "hessian", frozenset({"h_diag"})

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) Hessian-diagonal-weighted squared errors."""
        return (ctx.wq - ctx.w).pow(2) @ ctx.h_diag


class KFACScore:
    """E[g_j^2] (w^Q_j - w_j) H (w^Q_j - w_j)^T per row: the Kronecker-factored Fisher estimate of the loss change."""

    name, needs = "kfac", frozenset({"h", "out_grad"})

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) loss-change estimates."""
        d = ctx.wq - ctx.w                                           # (out, in)
        return ctx.out_grad * ((d @ ctx.h) * d).sum(1)


class MDScore:
    """The MD of each quantized row."""

    name, needs = "md", frozenset({"md"})

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) MD."""
        return ctx.md()


class GeoQuantScore:
    """Fisher loss change of the row's quantization, among rows with MD over the layer's `md_percentile`."""

    name = "geoquant"

    def __init__(self, md_percentile: float = 50.0) -> None:
        if not 0.0 <= md_percentile < 100.0:
            raise ValueError(f"md_percentile must be in [0, 100), got {md_percentile}")
        self.md_percentile = md_percentile
        self.needs = frozenset({"fisher", "md"} if md_percentile > 0 else {"fisher"})

    def __call__(self, ctx: RowContext) -> Tensor:
        """Return (out,) scores: candidates their loss change (>= 0), the others below every candidate."""
        loss = 0.5 * (ctx.fisher * (ctx.wq - ctx.w).pow(2)).sum(1)
        if self.md_percentile == 0:
            return loss
        md = ctx.md()
        gate = md > torch.quantile(md, self.md_percentile / 100)
        return torch.where(gate, loss, -1.0 / (1.0 + loss))  # non-candidates rank after, in their own order


SCORERS: dict[str, Callable[..., Any]] = {s.name: s for s in (RandomScore, WeightErrorScore, HessianScore, KFACScore,
                                                             MDScore, GeoQuantScore)}


def choose(scores: dict[str, Tensor], widths: dict[str, int], keep: float, scope: str) -> dict[str, Tensor]:
    """Return the rows to keep per layer: the top `keep` share per layer, or over the whole model by weights."""
    check_keep(keep)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not scores:
        raise ValueError("no layer was scored: nothing to choose from")
    for n, s in scores.items():
        if not bool(torch.isfinite(s).all()):
            raise ValueError(f"layer {n}: a row score is NaN / Inf; the selector cannot rank its rows")
    if scope == "layer":
        # rounded down: the budget is a ceiling, never exceeded in any layer
        rows = {n: torch.topk(s, int(keep * s.numel() + 1e-9)).indices.sort().values for n, s in scores.items()}
        return _some(rows, keep, f"no layer has {1 / max(s.numel() for s in scores.values()) * 100:.3g}% of its rows "
                                 f"in it: raise the budget or keep over the whole model")
    names = list(scores)
    flat = torch.cat([scores[n] for n in names])
    owner = torch.cat([torch.full((scores[n].numel(),), i) for i, n in enumerate(names)])
    row = torch.cat([torch.arange(scores[n].numel()) for n in names])
    cost = torch.cat([torch.full((scores[n].numel(),), float(widths[n]), dtype=torch.float64) for n in names])
    order = flat.argsort(descending=True, stable=True)
    budget = keep * float(cost.sum())
    take = order[torch.cumsum(cost[order], 0) <= budget]
    rows = {n: row[take[owner[take] == i]].sort().values for i, n in enumerate(names)}
    return _some(rows, keep, f"the top-ranked row alone is {float(cost[order[0]] / cost.sum()) * 100:.3g}% of the "
                             f"quantized weights: raise the budget")


def _some(rows: dict[str, Tensor], keep: float, why: str) -> dict[str, Tensor]:
    """Refuse a choice that keeps no row at all: a mixed-precision run that changed nothing must not pass as one."""
    if not any(r.numel() for r in rows.values()):
        raise ValueError(f"a float16 budget of {keep * 100:g}% keeps no row: {why}")
    return rows


def check_keep(keep: float) -> None:
    """Refuse a budget outside (0, 50%]."""
    if not 0.0 < keep <= 0.5:
        raise ValueError(f"the float16 budget must be in (0, 50%] of the quantized weights, got {keep * 100:g}%")


class ScoreRecorder:
    """A backend wrapper: quantizes as the inner backend does, then scores every row of the block's layers.

    Records per layer the original weight (float16, for the rows that will be kept) and one
    score vector per scorer. Block outputs pass through unchanged. Where a scorer needs the
    layer's input statistics (H's diagonal, or H), they are accumulated while the inner backend
    runs the block (a backend that does not run it gets one forward of the float block first).
    `sens` holds what was measured on the float model beforehand (`sensitivities`).
    """

    def __init__(self, inner: Any, scorers: list[Any], model: nn.Module,
                 sens: dict[str, dict[str, Tensor]] | None = None) -> None:
        from mdq_quantkit.layerwise import blocks_of

        self.inner, self.scorers, self.sens = inner, scorers, sens or {}
        self.name = inner.name
        self.needs = frozenset().union(*(s.needs for s in scorers))
        missing = sorted(self.needs & {"fisher", "out_grad"} - set(self.sens))
        if missing:
            raise ValueError(f"a scorer needs {', '.join(missing)} from the float model: pass sens=sensitivities(...)")
        self.inputs = "h" if "h" in self.needs else "h_diag" if "h_diag" in self.needs else None
        self.needs_calibration = inner.needs_calibration or self.inputs is not None
        prefix, blocks = blocks_of(model)
        self.prefix = {id(b): f"{prefix}.{i}." for i, b in enumerate(blocks)}
        self.scores: dict[str, dict[str, Tensor]] = {s.name: {} for s in scorers}
        self.seconds: dict[str, float] = dict.fromkeys(self.scores, 0.0)
        self.originals: dict[str, Tensor] = {}

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any], cfg: Any) -> dict[str, Any]:
        """Quantize and score the block."""
        return self.quantize_block_forward(block, inputs, kwargs, cfg)[0]

    def quantize_block_forward(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                               cfg: Any) -> tuple[dict[str, Any], list[Tensor] | None]:
        """Quantize with the inner backend (collecting input statistics as it runs), then score every row."""
        from mdq_quantkit.layerwise import layer_inputs, linears_of, weight_of

        lin = linears_of(block)
        originals = {n: weight_of(m).clone() for n, m in lin.items()}
        forward = hasattr(self.inner, "quantize_block_forward")
        acc = _InputStats(lin, self.inputs == "h")
        if self.inputs and not forward:
            layer_inputs(block, list(lin), inputs, kwargs, acc.add)
        with acc.hooks(self.inputs is not None and forward):
            if forward:
                stats, outputs = self.inner.quantize_block_forward(block, inputs, kwargs, cfg)
            else:
                stats, outputs = self.inner.quantize_block(block, inputs, kwargs, cfg), None
        pre = self.prefix.get(id(block), "")
        for n, w in originals.items():
            full = pre + n
            ctx = RowContext(full, w, block.get_submodule(n).dequantized())
            if self.inputs:
                if acc.tokens[n] == 0:
                    raise ValueError(f"no calibration input reached layer {full!r}: its selector needs the inputs")
                mean = (acc.sums[n] / acc.tokens[n]).float()
                ctx.h, ctx.h_diag = (mean, mean.diagonal().clone()) if self.inputs == "h" else (None, mean)
            for key in ("fisher", "out_grad"):
                if key in self.sens:
                    setattr(ctx, key, self.sens[key][full])
            if "md" in self.needs:  # computed once, its time charged to every scorer that uses it
                t0 = time.perf_counter()
                ctx.md()
                for s in self.scorers:
                    if "md" in s.needs:
                        self.seconds[s.name] += time.perf_counter() - t0
            for s in self.scorers:
                t0 = time.perf_counter()
                self.scores[s.name][full] = s(ctx).float()
                self.seconds[s.name] += time.perf_counter() - t0
            self.originals[full] = w.half()
        return stats, outputs

    def shapes(self) -> dict[str, tuple[int, int]]:
        """Return (rows, weights per row) of every scored layer."""
        return {n: (w.shape[0], w.shape[1]) for n, w in self.originals.items()}

    def apply(self, model: nn.Module, scorer: str, keep: float, scope: str) -> dict[str, Any]:
        """Keep the rows `scorer` ranks highest in float16 (replacing any rows kept before); return what was kept."""
        if scorer not in self.scores:
            raise ValueError(f"scorer {scorer!r} was not recorded (recorded: {', '.join(self.scores)})")
        shapes = self.shapes()
        rows = choose(self.scores[scorer], {n: s[1] for n, s in shapes.items()}, keep, scope)
        for n, r in rows.items():
            model.get_submodule(n).keep(r, self.originals[n][r])
        return kept_summary(rows, shapes)


def kept_summary(rows: dict[str, Tensor], shapes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Count kept rows and weights, and the kept weights' share of all quantized weights."""
    kept = sum(int(r.numel()) * shapes[n][1] for n, r in rows.items())
    total = sum(o * i for o, i in shapes.values())
    return {"kept_rows": sum(int(r.numel()) for r in rows.values()), "kept_weights": kept, "kept_share": kept / total,
            "layers_with_kept_rows": sum(1 for r in rows.values() if r.numel())}


class RowSelector:
    """An outlier selector for `mdq quantize --outliers NAME --keep 1%`: wrap the backend, quantize, then apply.

    `keep`, `keep_scope` (0: per layer, 1: whole model) and `md_percentile` come from the
    control state's `geoquant` operator (its defaults where the state has none); explicit
    arguments win.
    """

    def __init__(self, scorer: str, state: Any = None, *, keep: float | None = None, scope: str | None = None,
                 md_percentile: float | None = None, seed: int = 0, fisher_samples: int = 8) -> None:
        from .params import param

        if scorer not in SCORERS:
            raise ValueError(f"no row scorer {scorer!r} (known: {', '.join(SCORERS)})")
        self.keep = param(state, "keep") if keep is None else float(keep)
        check_keep(self.keep)
        if scope is None:
            code = param(state, "keep_scope")
            if code not in (0.0, 1.0):
                raise ValueError(f"the geoquant operator's keep_scope must be 0 (per layer) or 1 (whole model), got {code}")
            scope = SCOPES[int(code)]
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
        self.scope = scope
        pct = param(state, "md_percentile") if md_percentile is None else float(md_percentile)
        options = {"random": {"seed": seed}, "geoquant": {"md_percentile": pct}}.get(scorer, {})
        self.scorer = SCORERS[scorer](**options)
        self.name, self.fisher_samples = scorer, fisher_samples
        self.needs_calibration = bool(self.scorer.needs & {"fisher", "out_grad", "h", "h_diag"})
        self.recorder: ScoreRecorder | None = None

    @staticmethod
    def check_backend(backend: Any) -> None:
        """Refuse a backend whose quantized rows are not of the original float weights (e.g. AWQ's rescaled ones)."""
        if getattr(backend, "name", None) not in KEEPS_FLOAT_ROWS:
            raise ValueError(f"float16 outlier rows work with the {' and '.join(KEEPS_FLOAT_ROWS)} backends, not "
                             f"{getattr(backend, 'name', backend)!r}: a backend that rescales weights before quantizing "
                             f"(as AWQ does) has no original row to keep")

    def wrap(self, backend: Any, model: nn.Module, samples: list[Tensor]) -> ScoreRecorder:
        """Return the backend to quantize with (loss sensitivities, if needed, are measured now, on the float model)."""
        self.check_backend(backend)
        sens = None
        if self.scorer.needs & {"fisher", "out_grad"}:
            if not samples:
                raise ValueError(f"the {self.name} selector needs calibration samples to measure loss gradients")
            sens = sensitivities(model, list(samples[:self.fisher_samples]))
        self.recorder = ScoreRecorder(backend, [self.scorer], model, sens)
        return self.recorder

    def apply(self, model: nn.Module) -> dict[str, Any]:
        """Keep the chosen rows in float16; return what was kept."""
        if self.recorder is None:
            raise RuntimeError("apply() comes after quantizing with the backend wrap() returned")
        return {"selector": self.name, "keep": self.keep, "scope": self.scope,
                **self.recorder.apply(model, self.name, self.keep, self.scope)}


class _InputStats:
    """Sums of x x^T (or of x^2 only) of each layer's inputs, from hooks that may fire in many threads.

    Layers fed the same tensor (q, k, v; gate, up) share one computation per input: GPTQ runs each
    calibration input in its own thread, so the last input seen is remembered per thread.
    """

    def __init__(self, lin: dict[str, nn.Module], full: bool) -> None:
        self.lin, self.full = lin, full
        self.sums: dict[str, Tensor | float] = dict.fromkeys(lin, 0.0)
        self.tokens = dict.fromkeys(lin, 0)
        self.lock, self.local = threading.Lock(), threading.local()

    def add(self, name: str, x: Tensor) -> None:
        """Add one input (..., in) of layer `name`."""
        if getattr(self.local, "x", None) is not x:
            from mdq_quantkit.layerwise import gram

            x2 = x.reshape(-1, x.shape[-1]).float()
            self.local.x, self.local.n = x, x2.shape[0]
            self.local.s = gram(x2).double() if self.full else x2.double().pow(2).sum(0)
        with self.lock:
            self.sums[name] = self.sums[name] + self.local.s
            self.tokens[name] += self.local.n

    @contextmanager
    def hooks(self, on: bool) -> Iterator[None]:
        """While on, add every input the layers receive."""
        if not on:
            yield
            return
        hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: self.add(n, a[0])) for n, m in self.lin.items()]
        try:
            yield
        finally:
            for h in hooks:
                h.remove()
            self.local = threading.local()  # drop the last inputs the threads held


def sensitivities(model: nn.Module, samples: list[Tensor]) -> dict[str, dict[str, Tensor]]:
    """Measure on the float model, per block linear layer: the empirical diagonal Fisher of its weight
    ("fisher", (out, in)) and the mean squared loss gradient of each of its outputs ("out_grad", (out,))."""
    from mdq_quantkit.layerwise import blocks_of, linears_of

    from .classify import fisher_diag

    prefix, blocks = blocks_of(model)
    layers = {f"{prefix}.{i}.{n}": m for i, b in enumerate(blocks) for n, m in linears_of(b).items()}
    g2: dict[str, Tensor | float] = dict.fromkeys(layers, 0.0)
    count = dict.fromkeys(layers, 0)

    def grab(n: str, grad: Tensor) -> None:
        g = grad.reshape(-1, grad.shape[-1]).double()
        g2[n] = g2[n] + g.pow(2).sum(0)
        count[n] += g.shape[0]

    def on_output(n: str, out: Tensor) -> None:
        if out.requires_grad:  # the gradient that reaches this layer's output in the backward pass
            out.register_hook(lambda grad: grab(n, grad))

    hooks = [m.register_forward_hook(lambda _m, _a, out, n=n: on_output(n, out)) for n, m in layers.items()]
    try:
        fisher = fisher_diag(model, samples, layers)
    finally:
        for h in hooks:
            h.remove()
    return {"fisher": fisher, "out_grad": {n: (g2[n] / count[n]).float() for n in layers}}
