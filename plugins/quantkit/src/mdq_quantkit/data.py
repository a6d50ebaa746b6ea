"""Calibration text and the perplexity protocol.

Protocol (fixed, the same for every backend): the text is the standard library's
`pydoc_data.topics` joined in sorted key order with blank lines (about 465k characters), or a
user file. It is tokenized once with the model's tokenizer, without special tokens. The first
half of the tokens is the calibration pool: `n` windows of `seqlen` tokens at seeded random
offsets. The second half is the evaluation split: its first `tokens` tokens, cut into
non-overlapping windows of `seqlen` (stride = seqlen); perplexity = exp(mean next-token NLL over
every predicted token). Calibration and evaluation never overlap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def corpus_text(path: str | Path | None = None) -> str:
    """Return the calibration / evaluation text: a user file, or pydoc_data.topics."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"text file {p} does not exist")
        return p.read_text(encoding="utf-8")
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def split_tokens(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Return (calibration pool, evaluation split): the first and second half of the token ids."""
    ids = ids.reshape(-1)
    half = ids.numel() // 2
    return ids[:half], ids[half:]


def tokenize(tokenizer: Any, text: str) -> Tensor:
    """Tokenize the whole text once, without special tokens."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def calibration_samples(pool: Tensor, n: int, seqlen: int, seed: int = 0) -> list[Tensor]:
    """Return n windows (1, seqlen) at seeded random offsets in the calibration pool."""
    if n < 1 or seqlen < 2:
        raise ValueError(f"need n >= 1 samples of seqlen >= 2 tokens, got n={n}, seqlen={seqlen}")
    if pool.numel() < seqlen:
        raise ValueError(f"the calibration text has {pool.numel()} tokens, shorter than one sequence of {seqlen}; "
                         f"give a longer text or a smaller --seqlen")
    rng = random.Random(seed)
    starts = [rng.randrange(0, pool.numel() - seqlen + 1) for _ in range(n)]
    return [pool[s:s + seqlen].unsqueeze(0) for s in starts]


@torch.no_grad()
def perplexity(model: Any, ids: Tensor, *, seqlen: int = 512, tokens: int = 16384,
               progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Return {"ppl", "nll", "tokens", "windows"} over the first `tokens` ids in windows of `seqlen`."""
    ids = ids.reshape(-1)[:tokens]
    n_win = ids.numel() // seqlen
    if n_win < 1:
        raise ValueError(f"the evaluation split has {ids.numel()} tokens, fewer than one window of {seqlen}")
    model.eval()
    total, count = 0.0, 0
    for i in range(n_win):
        x = ids[i * seqlen:(i + 1) * seqlen].unsqueeze(0)
        logits = model(x, use_cache=False).logits.float()
        nll = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:], reduction="sum")
        total += float(nll)
        count += seqlen - 1
        if progress:
            progress(i + 1, n_win)
    return {"ppl": math.exp(total / count), "nll": total / count, "tokens": float(count), "windows": float(n_win)}
