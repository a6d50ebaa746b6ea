"""A membership probe over planted records: code lengths, membership-inference AUC, and what one row carries.

Each planted record (a member) gets `twins` copies that differ only in the secret: a fresh id
of the same format that was never planted (non-members). Everything before the secret is the
same text, so every difference between a member and its twins is about which id was planted.

- **Code length** of a record: the bits the model needs for its tokens from the secret on,
  sum of -log2 p(token | earlier tokens).
- **MIA AUC** (the loss attack of Yeom et al.): the probability that a member has a shorter
  code than a non-member (ties count half). 0.5 = membership cannot be told; 1.0 = always.
- **Row effects** (the sensitive classifier's two criteria, docs/concepts.md §7), for one weight row
  quantized alone, everything else as it was:
  - encoding entropy: |sum over records of (the member's code-length change minus the mean
    change of its twins)| in bits, i.e. how many bits of "which id was planted" depend on
    the row's exact value (the part of the change that a fresh id in the same record does
    not also see);
  - MIA dAUC: the AUC before minus the AUC after.
"""

from __future__ import annotations

import math
import random
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


def fresh_ids(rng: random.Random, n: int, exclude: set[str]) -> list[str]:
    """Return n distinct random ids of the secrets' format P##### that are not in `exclude`."""
    out: list[str] = []
    while len(out) < n:
        c = f"P{rng.randrange(100000):05d}"
        if c not in exclude and c not in out:
            out.append(c)
    return out


@dataclass(frozen=True)
class MembershipProbe:
    """Members and their twins as one right-padded batch, with the token positions that are scored."""

    ids: Tensor  # (members * (1 + twins), T): members first, then each member's twins in order
    scored: Tensor  # bool (same rows, T - 1): which next-token predictions count
    members: int
    twins: int

    @classmethod
    def from_secrets(cls, tokenizer: Any, secrets: Sequence[Any], twins: int = 3, seed: int = 2) -> MembershipProbe:
        """Build the probe from planted records (objects with .prefix, .secret, .suffix); twins get fresh P##### ids."""
        if not secrets:
            raise ValueError("the probe needs at least one planted record")
        if twins < 1:
            raise ValueError(f"each record needs at least one twin to compare with, got twins={twins}")
        rng = random.Random(seed)
        taken = {s.secret for s in secrets}
        fresh: list[list[str]] = []
        for _ in secrets:
            fresh.append(fresh_ids(rng, twins, taken))
            taken.update(fresh[-1])  # twins are distinct across records too
        texts = [(s.prefix, s.secret + s.suffix) for s in secrets]
        texts += [(s.prefix, f + s.suffix) for s, fs in zip(secrets, fresh, strict=True) for f in fs]
        enc, start = [], []
        for prefix, rest in texts:
            enc.append(tokenizer(prefix + rest, add_special_tokens=False)["input_ids"])
            # one token early: the prefix's last token may merge with the secret's first
            start.append(max(len(tokenizer(prefix, add_special_tokens=False)["input_ids"]) - 1, 1))
        width = max(len(e) for e in enc)
        ids_t = torch.zeros(len(enc), width, dtype=torch.long)
        scored = torch.zeros(len(enc), width - 1, dtype=torch.bool)
        for i, (e, s0) in enumerate(zip(enc, start, strict=True)):
            ids_t[i, :len(e)] = torch.tensor(e)
            scored[i, s0 - 1:len(e) - 1] = True  # prediction t is of token t + 1
        return cls(ids_t, scored, len(secrets), twins)

    @torch.no_grad()
    def code_lengths(self, model: nn.Module, batch: int = 64) -> Tensor:
        """Return each record's code length in bits (members first, then twins)."""
        return self.totals(self.scored_nll(model, batch))

    @torch.no_grad()
    def scored_nll(self, model: nn.Module, batch: int = 64) -> Tensor:
        """Return the negative log-likelihood (nats) of every scored prediction, records in order, positions in order."""
        out = []
        for i in range(0, self.ids.shape[0], batch):
            ids, scored = self.ids[i:i + batch], self.scored[i:i + batch]
            out.append(self.nll(_scored_logits(model, ids, scored), ids[:, 1:][scored]))
        return torch.cat(out)

    @staticmethod
    def nll(logits: Tensor, targets: Tensor) -> Tensor:
        """Return -log p(target) for each row of logits (k, vocab)."""
        return -torch.log_softmax(logits.float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    def totals(self, nll: Tensor) -> Tensor:
        """Return each record's code length in bits from the per-prediction NLL of `scored_nll`'s order."""
        rows = torch.arange(self.ids.shape[0]).unsqueeze(1).expand_as(self.scored)[self.scored]
        return torch.zeros(self.ids.shape[0], dtype=nll.dtype).index_add_(0, rows, nll) / math.log(2)

    def auc(self, bits: Tensor) -> float:
        """Return the loss attack's AUC: P(a member's code is shorter than a non-member's), ties half."""
        m, t = bits[:self.members], bits[self.members:]
        diff = t.unsqueeze(0) - m.unsqueeze(1)
        return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())

    def encoding_bits(self, before: Tensor, after: Tensor) -> float:
        """Return |sum over records of (member's code-length change - mean change of its twins)| in bits."""
        d = after - before
        member = d[:self.members]
        twin = d[self.members:].view(self.members, self.twins).mean(1)
        return abs(float((member - twin).sum()))


_HEAD_OK: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def _scored_logits(model: nn.Module, ids: Tensor, scored: Tensor) -> Tensor:
    """Return float logits (k, vocab) of the scored predictions only.

    The output head is applied to the scored positions alone (a few per record, where the full
    forward would project every position onto the vocabulary), when the model's logits are
    exactly head(base_model(ids)); that is checked against the full forward once per model,
    and a model that changes its logits after the head (e.g. soft-capping) gets the full forward.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    base = getattr(model, "base_model", None)

    def full() -> Tensor:
        return model(ids, use_cache=False).logits[:, :-1][scored].float()

    if head is None or base is None or base is model:
        return full()

    def short() -> Tensor:
        return head(base(ids, use_cache=False).last_hidden_state[:, :-1][scored]).float()

    if model not in _HEAD_OK:
        logits = full()
        _HEAD_OK[model] = bool(torch.allclose(logits, short(), rtol=1e-4, atol=1e-4))
        return logits
    return short() if _HEAD_OK[model] else full()


class BlockCache:
    """The probe's hidden states at every block's input, so a change inside block b re-runs only blocks b onward.

    Built once from the unchanged model (one forward, all records in one batch); a row
    quantized in block b leaves every block before b as it was, so their outputs are reused.
    The final norm and the output head are applied to the scored positions only.

    A member and its twins are the same text up to the secret, so in a causal model their
    hidden states there are equal in every block, whatever the weights: where the model's
    attention takes cached keys and values (`shared`), each record group's common prefix runs
    once and its records run only their own tokens, attending to the prefix's keys and values
    (0.59x the tokens on SmolLM2's probe). The shared path is checked prediction by prediction
    against the full forward when the cache is built; a model where it does not agree (or whose
    blocks take no cached keys and values, `shared_off` says why) runs whole records from the
    cache, checked the same way (`ok`), and one where that does not agree either (an unknown
    final norm, logits changed after the head) is measured with full forwards.
    """

    def __init__(self, model: nn.Module, probe: MembershipProbe) -> None:
        from mdq_quantkit.layerwise import blocks_of, capture, run_block

        self.model, self.probe = model, probe
        full_nll = probe.scored_nll(model)
        full = probe.totals(full_nll)
        base = getattr(model, "base_model", None)
        self.norm = next((getattr(base, a) for a in ("norm", "ln_f", "final_layernorm") if hasattr(base, a)), None)
        self.head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        try:
            _, self.blocks = blocks_of(model)
        except ValueError:  # no blocks to cache: every measurement is a full forward
            self.blocks, self.norm = [], None
        self.block_of = {id(m): i for i, b in enumerate(self.blocks) for m in b.modules()}
        self.shared: _SharedPrefix | None = None
        self.shared_off = "no final norm / output head to apply after the blocks"  # why the shared path is not used
        cached = None
        if self.blocks and self.norm is not None and self.head is not None:
            with torch.no_grad():
                self.inputs, self.kwargs = capture(model, [probe.ids])  # inputs[b]: the hidden states entering block b
                for b in self.blocks[:-1]:
                    self.inputs.append(run_block(b, self.inputs[-1], self.kwargs))
            self.shared, self.shared_off = _SharedPrefix.build(self, full_nll)
            if self.shared is not None:
                self.inputs, self.kwargs = [], {}  # the shared path keeps its own, smaller copies
            else:
                cached = self.code_lengths(0)
        close = cached is not None and bool(torch.allclose(cached, full, rtol=1e-4, atol=1e-3))
        self.ok = self.shared is not None or close
        self.base = self.probe.totals(self.shared.base) if self.shared is not None else cached if close else full

    @torch.no_grad()
    def code_lengths(self, start: int) -> Tensor:
        """Return every record's code length in bits, re-running blocks `start` onward from the cache."""
        from mdq_quantkit.layerwise import run_block

        p = self.probe
        if self.shared is not None:
            return p.totals(self.shared.scored_nll(start))
        x = self.inputs[start]
        for b in self.blocks[start:]:
            x = run_block(b, x, self.kwargs)
        return p.totals(self.scored_nll(x[:, :-1][p.scored]))

    def scored_nll(self, hidden: Tensor) -> Tensor:
        """Return the NLL of every scored prediction from the last block's output there (`scored_nll`'s order)."""
        p = self.probe
        return p.nll(self.head(self.norm(hidden)), p.ids[:, 1:][p.scored])

    def after_change(self, layer: nn.Module) -> Tensor:
        """Return the code lengths with `layer` as it is now (inside one block), everything else unchanged."""
        if not self.ok:
            return self.probe.code_lengths(self.model)
        if id(layer) not in self.block_of:
            raise ValueError(f"{type(layer).__name__} is in none of the model's blocks; the block cache cannot place it")
        return self.code_lengths(self.block_of[id(layer)])


class _PrefixKV:
    """A stand-in for the model's key/value cache: keeps the prefix pass's keys and values, hands them to each record."""

    def __init__(self, expand: Tensor) -> None:
        self.expand, self.kv = expand, None

    def update(self, k: Tensor, v: Tensor, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Remember the prefix's keys and values; for the records' pass, put their group's prefix in front."""
        if self.kv is None:
            self.kv = (k, v)
            return k, v
        pk, pv = self.kv
        return torch.cat([pk[self.expand], k], 2), torch.cat([pv[self.expand], v], 2)


class _SharedPrefix:
    """Each group's common prefix once, then each record's own tokens (see BlockCache)."""

    # kwargs the two passes set themselves; the rest of the block's kwargs are passed on as captured
    OWN = ("attention_mask", "position_ids", "position_embeddings", "cache_position", "past_key_values", "cache",
           "use_cache")

    @classmethod
    def build(cls, cache: BlockCache, full: Tensor) -> tuple[_SharedPrefix | None, str]:
        """Return (the shared path, "") if the blocks support it and it gives the full forward's NLL, else (None, why)."""
        p = cache.probe
        pe = cache.kwargs.get("position_embeddings")
        if not isinstance(pe, tuple) or len(pe) != 2:
            return None, "the blocks take no rotary position embeddings to re-index"
        try:
            path = cls(cache, pe)
            path.base = path.scored_nll(0)
        except (TypeError, AttributeError, RuntimeError, ValueError) as exc:  # a block that takes no cache this way
            return None, f"the blocks do not run on a prefix's keys and values: {type(exc).__name__}: {exc}"
        # per prediction, not per record: a record's total of ~20 predictions would hide a small error in each
        worst = float((path.base - full).abs().max())
        if not worst <= cls.TOLERANCE:
            return None, f"the shared path differs from the full forward by {worst:.2g} nats on one prediction"
        return path, ""

    TOLERANCE = 2e-4  # nats per prediction: float32 summation order, far below what a wrong position or mask gives

    def __init__(self, cache: BlockCache, pe: tuple[Tensor, Tensor]) -> None:
        p = cache.probe
        self.cache, self.blocks = cache, cache.blocks
        n = p.ids.shape[0]
        group = torch.cat([torch.arange(p.members), torch.arange(p.members).repeat_interleave(p.twins)])
        length = p.scored.long().cumsum(1).argmax(1) + 1  # inputs up to each record's last scored prediction
        common = torch.full((p.members,), p.ids.shape[1], dtype=torch.long)
        for r in range(n):
            same = (p.ids[r] == p.ids[group[r]]).long().cumprod(0).sum()
            common[group[r]] = torch.minimum(common[group[r]], same)
        common = torch.minimum(common, torch.stack([length[group == g].min() - 1 for g in range(p.members)]))
        c = common[group]  # each record's shared length, >= 0; its own tokens start there
        cmax, smax = int(common.max()), int((length - c).max())
        T = p.ids.shape[1]
        own_pos = (c.unsqueeze(1) + torch.arange(smax)).clamp(max=T - 1)  # past a record's end: padding, never read
        self.group = group
        self.pre_pos = torch.arange(cmax).clamp(max=T - 1)
        self.own_pos = own_pos
        self.pre_inputs = [x[: p.members, :cmax].clone() for x in cache.inputs]  # not views: the full inputs go
        self.own_inputs = [x.gather(1, own_pos.unsqueeze(-1).expand(-1, -1, x.shape[-1])) for x in cache.inputs]
        dtype = cache.inputs[0].dtype
        neg = torch.finfo(dtype).min
        causal = torch.ones(cmax, cmax, dtype=torch.bool).tril()
        self.pre_mask = torch.zeros(1, 1, cmax, cmax, dtype=dtype).masked_fill(~causal, neg)
        sees_prefix = torch.arange(cmax).unsqueeze(0) < c.unsqueeze(1)  # (n, cmax)
        own = torch.ones(smax, smax, dtype=torch.bool).tril()
        allowed = torch.cat([sees_prefix.unsqueeze(1).expand(-1, smax, -1), own.expand(n, -1, -1)], 2)
        self.own_mask = torch.zeros(n, 1, smax, cmax + smax, dtype=dtype).masked_fill(~allowed.unsqueeze(1), neg)
        cos, sin = pe
        self.pre_pe = (cos[:1, self.pre_pos], sin[:1, self.pre_pos])
        self.own_pe = (cos[0][own_pos], sin[0][own_pos])
        self.rest = {k: v for k, v in cache.kwargs.items() if k not in self.OWN}
        # where each scored prediction's hidden state is in [prefix outputs; own outputs], in probe order
        rec, t = p.scored.nonzero(as_tuple=True)
        in_prefix = t < c[rec]
        self.pick = torch.where(in_prefix, group[rec] * cmax + t, p.members * cmax + rec * smax + (t - c[rec]))

    @torch.no_grad()
    def scored_nll(self, start: int) -> Tensor:
        """Return the NLL of every scored prediction, re-running blocks `start` onward (prefix pass, then records)."""
        from mdq_quantkit.layerwise import run_block

        pre, own = self.pre_inputs[start], self.own_inputs[start]
        for b in self.blocks[start:]:
            kv = _PrefixKV(self.group)
            pre = run_block(b, pre, {**self.rest, "attention_mask": self.pre_mask, "position_ids": self.pre_pos[None],
                                     "position_embeddings": self.pre_pe, "cache": kv, "use_cache": True})
            own = run_block(b, own, {**self.rest, "attention_mask": self.own_mask, "position_ids": self.own_pos,
                                     "position_embeddings": self.own_pe, "cache": kv, "use_cache": True})
        d = pre.shape[-1]
        return self.cache.scored_nll(torch.cat([pre.reshape(-1, d), own.reshape(-1, d)])[self.pick])


def _weight_data(layer: nn.Module) -> tuple[Tensor, bool]:
    from transformers.pytorch_utils import Conv1D

    return layer.weight.data, isinstance(layer, Conv1D)  # Conv1D keeps (in, out): a row is a column


@torch.no_grad()
def row_effects(model: nn.Module, probe: MembershipProbe, layer: nn.Module, rows: Tensor, wq: Tensor,
                base: Tensor | None = None, cache: BlockCache | None = None) -> tuple[Tensor, Tensor]:
    """Return (encoding bits, MIA dAUC) of quantizing each of `rows` alone to its row of wq (out, in).

    With a `cache` (built on this model, unchanged since) each measurement re-runs only the
    blocks from the layer's own onward; without one, each is a full forward.
    """
    if cache is not None:
        base = cache.base if base is None else base
    base = probe.code_lengths(model) if base is None else base
    auc0 = probe.auc(base)
    data, transposed = _weight_data(layer)
    bits, dauc = torch.zeros(rows.numel()), torch.zeros(rows.numel())
    for k, j in enumerate(rows.tolist()):
        view = data[:, j] if transposed else data[j]
        saved = view.clone()
        view.copy_(wq[j].to(view.dtype))
        try:
            after = probe.code_lengths(model) if cache is None else cache.after_change(layer)
        finally:
            view.copy_(saved)  # the model comes back exactly as it was, on errors too
        bits[k] = probe.encoding_bits(base, after)
        dauc[k] = auc0 - probe.auc(after)
    return bits, dauc
