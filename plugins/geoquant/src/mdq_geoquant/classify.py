"""Outlier classifiers (docs/concepts.md §7): functional rows, sensitive rows, and how overlaps are resolved.

The unit is a weight row of a linear layer (one output channel), the granularity at which a
quantizer stores scales and at which MD is defined.

- **Functional**: quantizing the row alone would raise perplexity by dPPL >= `threshold`
  (default 0.3, the design's). The loss change is the second-order estimate with the empirical
  diagonal Fisher F: dL_j = 1/2 sum_i F_ji (w^Q_ji - w_ji)^2 (the gradient term vanishes at a
  trained optimum), and dPPL_j = PPL (exp(dL_j) - 1). `measured_dppl` quantizes one row for
  real and evaluates, to check the estimate.
- **Sensitive** (the design's two criteria, measured on planted records, see probe.py):
  quantizing the row alone changes >= 8 bits of the encoding of which secret was planted
  (encoding entropy), or lowers the membership-inference AUC by >= 0.1 (MIA dAUC). A Fisher
  screen picks the rows to measure; S_priv = max(bits / 8, dAUC / 0.1).
- **Overlap**: S_func = dPPL / its threshold and S_priv as above; a row over both is sensitive
  when lambda S_priv > (1 - lambda) S_func, else functional.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .md import weight
from .probe import BlockCache, MembershipProbe, row_effects


@contextmanager
def grads_only(model: nn.Module, params: Iterable[Tensor]) -> Iterator[None]:
    """Let only `params` take gradients inside the block; restore every flag and clear the gradients after."""
    was = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in was:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in was:
            p.requires_grad_(flag)


def fisher_diag(model: nn.Module, samples: Sequence[Tensor], layers: dict[str, nn.Module]) -> dict[str, Tensor]:
    """Return the empirical diagonal Fisher (out, in) of each layer's weight: mean over samples of grad^2."""
    if not samples:
        raise ValueError("the Fisher needs at least one sample")
    params = {n: m.weight for n, m in layers.items()}
    for n, p in params.items():
        if not p.is_floating_point():
            raise ValueError(f"layer {n} is already quantized; classify outliers on the float model")
    F = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    with grads_only(model, params.values()):
        for x in samples:
            model.zero_grad(set_to_none=True)
            loss = model(x, labels=x, use_cache=False).loss
            loss.backward()
            for n, p in params.items():
                F[n] += p.grad.float().pow(2) / len(samples)
    from transformers.pytorch_utils import Conv1D

    return {n: (F[n].t() if isinstance(layers[n], Conv1D) else F[n]) for n in F}


def row_loss_change(F: Tensor, w: Tensor, wq: Tensor) -> Tensor:
    """Return the estimated loss change of quantizing each row alone: 1/2 sum_i F (w^Q - w)^2."""
    return 0.5 * (F * (wq - w).pow(2)).sum(1)


def rtn_weight(w: Tensor, bits: int, group_size: int) -> Tensor:
    """Return w quantized and dequantized round-to-nearest (the perturbation rows are scored under)."""
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.quant import dequantize, rtn

    cfg = QuantConfig(bits, min(group_size, w.shape[1]))
    return dequantize(*rtn(w, cfg), cfg)


@dataclass
class Outliers:
    """Rows per layer by class, with the scores that decided them."""

    functional: dict[str, Tensor] = field(default_factory=dict)
    sensitive: dict[str, Tensor] = field(default_factory=dict)
    s_func: dict[str, Tensor] = field(default_factory=dict)
    s_priv: dict[str, Tensor] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Number of rows in each class."""
        return {"functional": sum(int(v.numel()) for v in self.functional.values()),
                "sensitive": sum(int(v.numel()) for v in self.sensitive.values())}

    def to_json(self) -> dict[str, dict[str, list[int]]]:
        """Row ids per class and layer (non-empty only)."""
        return {k: {n: v.tolist() for n, v in getattr(self, k).items() if v.numel()} for k in ("functional", "sensitive")}


class _RowClassifier:
    """A threshold on a per-row score, scored under RTN at `bits` / `group_size`."""

    what = "threshold"

    def __init__(self, threshold: float, bits: int = 4, group_size: int = 128) -> None:
        if not threshold > 0:
            raise ValueError(f"the {self.what} must be > 0, got {threshold}")
        self.threshold, self.bits, self.group_size = threshold, bits, group_size


class FunctionalClassifier(_RowClassifier):
    """Rows whose quantization alone would raise perplexity by >= threshold (Fisher estimate)."""

    name = "functional"
    what = "dPPL threshold"

    def __init__(self, threshold: float = 0.3, bits: int = 4, group_size: int = 128) -> None:
        super().__init__(threshold, bits, group_size)

    def scores(self, model: nn.Module, samples: Sequence[Tensor], layers: dict[str, nn.Module],
               ppl: float) -> dict[str, Tensor]:
        """Return the estimated dPPL of quantizing each row alone, per layer."""
        F = fisher_diag(model, samples, layers)
        out = {}
        for n, m in layers.items():
            w = weight(m)
            dl = row_loss_change(F[n], w, rtn_weight(w, self.bits, self.group_size))
            out[n] = ppl * torch.expm1(dl)
        return out


@dataclass
class SensitiveScores:
    """Per layer: S_priv (>= 1 is sensitive), the two measured criteria, and which rows were measured."""

    s_priv: dict[str, Tensor] = field(default_factory=dict)
    encoding_bits: dict[str, Tensor] = field(default_factory=dict)
    dauc: dict[str, Tensor] = field(default_factory=dict)
    screen: dict[str, Tensor] = field(default_factory=dict)
    measured: dict[str, Tensor] = field(default_factory=dict)
    path: str = ""  # how the rows were measured: full forwards, block reuse, or block reuse with shared prefixes


class SensitiveClassifier(_RowClassifier):
    """Rows carrying >= `threshold` bits of which secret was planted, or moving the MIA AUC by >= `dauc`.

    Both criteria are measured (probe.row_effects) for the `candidates` rows ranked highest by
    a Fisher screen: 1/2 sum_i (F_members - F_twins)_ji (w^Q_ji - w_ji)^2, the second-order
    estimate of how much more quantizing the row moves the planted records' loss than their
    twins'. Rows outside the candidates are not measured and count as not sensitive.
    """

    name = "sensitive"
    what = "encoding-entropy threshold (bits)"

    def __init__(self, threshold: float = 8.0, dauc: float = 0.1, candidates: int = 128, bits: int = 4,
                 group_size: int = 128, reuse_blocks: bool = True) -> None:
        super().__init__(threshold, bits, group_size)
        if not dauc > 0 or candidates < 1:
            raise ValueError(f"the MIA dAUC threshold must be > 0 and candidates >= 1, got {dauc}, {candidates}")
        self.dauc, self.candidates = dauc, candidates
        self.reuse_blocks = reuse_blocks  # False: one full forward per measured row (the reference path)

    def scores(self, model: nn.Module, probe: MembershipProbe, layers: dict[str, nn.Module],
               progress: Callable[[int, int], None] | None = None) -> SensitiveScores:
        """Screen every row, measure both criteria on the top candidates, return S_priv per layer."""
        # each record without its padding: up to its last scored prediction's target
        records = [probe.ids[i:i + 1, :int(probe.scored[i].nonzero().max()) + 2] for i in range(probe.ids.shape[0])]
        Fm = fisher_diag(model, records[:probe.members], layers)
        Ft = fisher_diag(model, records[probe.members:], layers)
        out = SensitiveScores()
        wq: dict[str, Tensor] = {}
        for n, m in layers.items():
            w = weight(m)
            wq[n] = rtn_weight(w, self.bits, self.group_size)
            out.screen[n] = row_loss_change(Fm[n] - Ft[n], w, wq[n]).abs()
        flat = torch.cat([out.screen[n] for n in layers])
        top = torch.topk(flat, min(self.candidates, flat.numel())).indices
        cache = BlockCache(model, probe) if self.reuse_blocks else None
        out.path = "full forward per row" if cache is None or not cache.ok else \
            "block reuse, shared prefixes" if cache.shared is not None else f"block reuse ({cache.shared_off})"
        base = cache.base if cache is not None else probe.code_lengths(model)
        offset, done = 0, 0
        for n, m in layers.items():
            size = out.screen[n].numel()
            rows = top[(top >= offset) & (top < offset + size)] - offset
            offset += size
            bits, dauc = row_effects(model, probe, m, rows, wq[n], base, cache)
            out.encoding_bits[n], out.dauc[n] = torch.zeros(size), torch.zeros(size)
            out.encoding_bits[n][rows], out.dauc[n][rows] = bits, dauc
            out.measured[n] = torch.zeros(size, dtype=torch.bool)
            out.measured[n][rows] = True
            out.s_priv[n] = torch.maximum(out.encoding_bits[n] / self.threshold, out.dauc[n] / self.dauc)
            done += rows.numel()
            if progress and rows.numel():
                progress(done, top.numel())
        return out


def resolve(s_func: dict[str, Tensor], s_priv: dict[str, Tensor], func_threshold: float,
            priv_threshold: float = 1.0, lam: float = 0.5) -> Outliers:
    """Classify rows from both scores (each divided by its threshold); a row over both goes where lambda says."""
    if not 0 <= lam <= 1:
        raise ValueError(f"the privacy preference lambda must be in [0, 1], got {lam}")
    out = Outliers()
    for n in sorted(set(s_func) | set(s_priv)):
        f = s_func.get(n)
        p = s_priv.get(n)
        size = (f if f is not None else p).shape[0]
        f = torch.zeros(size) if f is None else f / func_threshold
        p = torch.zeros(size) if p is None else p / priv_threshold
        both = (f >= 1) & (p >= 1)
        to_priv = both & (lam * p > (1 - lam) * f)
        out.functional[n] = ((f >= 1) & ~to_priv).nonzero().flatten()
        out.sensitive[n] = (((p >= 1) & ~both) | to_priv).nonzero().flatten()
        out.s_func[n], out.s_priv[n] = f, p
    return out


@torch.no_grad()
def sequence_logprob(model: nn.Module, ids: Tensor) -> Tensor:
    """Return the summed next-token log-probability of each row of ids (n, T) after its first token."""
    logits = model(ids, use_cache=False).logits.float()
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return lp.sum(1)


def exposure(model: nn.Module, tokenizer: object, prefix: str, secret: str, candidates: Sequence[str],
             batch: int = 256) -> float:
    """Return Carlini et al.'s exposure of `secret` among `candidates`: log2 |R| - log2 rank (higher = more exposed)."""
    if secret in candidates:
        raise ValueError("the candidate set must not contain the secret itself")
    texts = [prefix + secret, *[prefix + c for c in candidates]]
    enc = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if len({len(e) for e in enc}) != 1:
        # candidates of the secret's format tokenize to different lengths: score each by its own length
        scores = torch.stack([sequence_logprob(model, torch.tensor([e]))[0] for e in enc])
    else:
        ids = torch.tensor(enc)
        scores = torch.cat([sequence_logprob(model, ids[i:i + batch]) for i in range(0, len(ids), batch)])
    rank = int((scores[1:] > scores[0]).sum()) + 1
    return math.log2(len(texts)) - math.log2(rank)
