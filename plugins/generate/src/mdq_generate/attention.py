"""The per-position L_h window attention (mdq_flexattn.window) as the model's attention function.

While a windowed generation runs, query position p attends to the keys j with

    p - W[p] < j <= p,      W[p] = window_scale * L_h(token at p)

where L_h is what the `table` length policy of the request's state decides for the first
visible character of the token at p (punctuation, the start of a catalog term, anything else)
and window_scale is the `generate` operator's. The token at p is the last one the model has
seen: the one being emitted is not known yet, so the window is decided causally.

Prefill (every position at once) runs `mdq_flexattn.window.WindowAttention` itself (masked
SDPA, or flex_attention when asked); each decoding step attends from its new positions over
the KV cache with the same rule (`rows_mask`), reading only the keys some window reaches, and
without a mask when one query per row starts at the same key (the usual case: one candidate,
or candidates whose windows agree); the tests check both paths against a full recompute.
The token windows are recorded by a pre-hook on the input embedding, so the attention function
never guesses which token sits where.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

NAME = "mdq_window"
_ACTIVE: contextvars.ContextVar[Windowed | None] = contextvars.ContextVar("mdq_window", default=None)


def first_chars(tokenizer: Any, vocab_size: int) -> list[str]:
    """Return, per token id, the first visible character of its text (a space when it has none)."""
    n = min(vocab_size, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False,
                                   clean_up_tokenization_spaces=False)
    out = []
    for t in texts:
        s = t.lstrip()
        out.append(s[0] if s else (t[0] if t else " "))
    return out + [" "] * (vocab_size - n)  # embedding rows beyond the tokenizer: never produced


def window_table(chars: Sequence[str], decide: Callable[[str, str], tuple[int, int]], scale: int) -> Tensor:
    """Return W per token id: `scale` x the L_h that `decide(history, a)` gives the token's first character."""
    lh: dict[str, int] = {}
    w = []
    for c in chars:
        v = lh.get(c)
        if v is None:
            v = lh[c] = int(decide("", c)[0])
        w.append(v)
    table = torch.tensor(w, dtype=torch.long) * int(scale)
    if len(table) and int(table.min()) < 1:
        raise ValueError(f"the window table has a length < 1 ({int(table.min())}): L_h and window_scale must be >= 1")
    return table


def rows_mask(window: Tensor, q_start: int) -> Tensor:
    """Return the (B, 1, Tk - q_start, Tk) mask of queries q_start..Tk-1: kv <= q and q - kv < window[b, q]."""
    Tk = window.shape[1]
    p = torch.arange(q_start, Tk, device=window.device)
    dist = p[:, None] - torch.arange(Tk, device=window.device)[None, :]  # (Tq, Tk): q - kv
    return ((dist >= 0) & (dist < window[:, q_start:, None])).unsqueeze(1)  # (B, 1, Tq, Tk)


class Windowed:
    """One windowed generation: the token window table, the windows of the positions seen, the prefill module."""

    def __init__(self, table: Tensor, attn: Any) -> None:
        self.table, self.attn = table, attn
        self.windows: Tensor | None = None  # (B, T): W of every position fed to the model so far
        self.calls = 0  # attention calls served, so a caller can tell the window was really used
        self._plan: tuple[int, int, tuple[int, Tensor | None]] | None = None

    def see(self, ids: Tensor) -> None:
        """Record the windows of newly fed token ids (B, T_new)."""
        w = self.table.to(ids.device)[ids]
        self.windows = w if self.windows is None else torch.cat([self.windows, w], dim=1)

    def plan(self, q_start: int, Tk: int) -> tuple[int, Tensor | None]:
        """How this decoding pass attends (built once, shared by every layer): (lo, mask over keys lo..Tk-1 or None).

        No query sees a key before `lo`, so the keys before it are skipped; when every row has a
        single query whose window starts at `lo`, the window is exactly the keys left: no mask.
        """
        if self._plan is None or self._plan[:2] != (q_start, Tk):
            W = self.windows[:, q_start:]  # (B, Tq)
            starts = (torch.arange(q_start, Tk, device=W.device) - W + 1).clamp(min=0)  # first key each query sees
            lo = int(starts.min())
            plain = W.shape[1] == 1 and int(starts.max()) == lo
            self._plan = (q_start, Tk, (lo, None if plain else rows_mask(self.windows, q_start)[..., lo:]))
        return self._plan[2]


def repeat_kv(x: Tensor, groups: int) -> Tensor:
    """(B, Hkv, T, D) -> (B, Hkv * groups, T, D): grouped-query attention's shared keys, one per query head."""
    if groups == 1:
        return x
    B, Hkv, T, D = x.shape
    return x[:, :, None].expand(B, Hkv, groups, T, D).reshape(B, Hkv * groups, T, D)


def window_attention(module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Any,
                     scaling: float | None = None, dropout: float = 0.0, **kwargs: Any) -> tuple[Tensor, None]:
    """transformers attention function: the window rule above; returns ((B, Tq, H, D), None)."""
    ctx = _ACTIVE.get()
    if ctx is None:
        raise RuntimeError(f"the {NAME!r} attention ran outside a windowed generation; use mdq_generate.attention.windowed")
    groups = getattr(module, "num_key_value_groups", 1)
    B, H, Tq, D = query.shape
    Tk = key.shape[2]
    W = ctx.windows
    if W is None or tuple(W.shape) != (B, Tk):
        raise RuntimeError(f"window attention lost track of positions: {None if W is None else tuple(W.shape)} "
                           f"windows for a batch of {B} over {Tk} keys")
    pos = kwargs.get("position_ids")
    if pos is not None and int(pos.reshape(-1)[-1]) != Tk - 1:
        raise RuntimeError(f"window attention expects queries ending at position {Tk - 1}, got position_ids {pos.tolist()}")
    if scaling is not None and not math.isclose(scaling, D ** -0.5, rel_tol=1e-6):
        query = query * (scaling * math.sqrt(D))  # both paths below scale by 1/sqrt(D)
    if Tq == Tk:  # prefill
        out = ctx.attn(query, repeat_kv(key, groups), repeat_kv(value, groups), W)  # k, v: (B, H, T, D)
    else:  # decoding over the KV cache, from the first key any window reaches
        lo, mask = ctx.plan(Tk - Tq, Tk)
        k, v = key[:, :, lo:], value[:, :, lo:]  # (B, Hkv, Tk - lo, D)
        if mask is None:  # the window is exactly these keys: the unmasked kernel, grouped-query native
            out = torch.nn.functional.scaled_dot_product_attention(query, k, v, enable_gqa=groups > 1)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(query, repeat_kv(k, groups), repeat_kv(v, groups),
                                                                   attn_mask=mask)
    ctx.calls += 1
    return out.transpose(1, 2).contiguous(), None  # (B, Tq, H, D)


def register() -> None:
    """Make `window_attention` known to transformers under NAME (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(NAME, window_attention)


@contextmanager
def windowed(model: Any, table: Tensor, attn: Any) -> Iterator[Windowed]:
    """Run `model` with the window attention inside the block (one generation at a time per model)."""
    register()
    ctx = Windowed(table, attn)
    hook = model.get_input_embeddings().register_forward_pre_hook(lambda _mod, args: ctx.see(args[0]))
    before = model.config._attn_implementation
    token = _ACTIVE.set(ctx)
    model.config._attn_implementation = NAME
    try:
        yield ctx
    finally:
        model.config._attn_implementation = before
        _ACTIVE.reset(token)
        hook.remove()
