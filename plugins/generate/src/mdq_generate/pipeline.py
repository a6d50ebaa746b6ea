"""The served generation pipeline: OpenAI-compatible completions under whatever control state is live.

    POST /v1/completions        {"model", "prompt", "max_tokens"?, "temperature"?, "top_p"?, "n"?, "seed"?, "stop"?}
    POST /v1/chat/completions   {"model", "messages", ... the same}
                                -> OpenAI's response: id, object, created, model, choices, usage (+ "mdq")

Every control is read from the request's one snapshot (`Controls.of(state)`):

    best_of       generate max(best_of, n) candidates per prompt, return the n with the highest
                  Flex-Attn reward against the question (the prompt, or the last user message);
                  ties keep the order of generation. At temperature 0 every candidate would be
                  the same, so one is generated and repeated n times.
    rank_lexical  rank by the lexical reward first (ties by the total) instead of by the total.
    window        the per-position L_h window attention replaces the model's attention (attention.py),
                  W[p] = window_scale x the `table` policy's L_h for the token at p.

`usage.completion_tokens` counts every token generated, discarded candidates included (what the
request cost). The `mdq` object says which state answered, the seed, the candidates, the window
path and each choice's reward. One KPI observation per returned choice (params.KPIS).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mdqcore.errors import Problem, RequestError

from .control import Controls
from .params import DEFAULT_MODEL, MODEL_ENV, MODEL_NAME_ENV, PAIRED_ENV, WINDOW_BACKEND_ENV
from .request import GenRequest, parse


class GeneratePipeline:
    """Generates under the request's snapshot (module docstring); the model loads on the first request."""

    def __init__(self, model: str | None = None, name: str | None = None, *, lm: Any = None, engine: Any = None,
                 window_backend: str | None = None, paired: bool | None = None) -> None:
        from .model import LM

        self.lm = lm or LM(model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL, name or os.environ.get(MODEL_NAME_ENV))
        self._engine = engine
        window_backend = window_backend or os.environ.get(WINDOW_BACKEND_ENV) or "dense"
        if window_backend not in ("dense", "flex", "auto"):
            raise ValueError(f"window_backend ({WINDOW_BACKEND_ENV}) must be 'dense', 'flex' or 'auto', "
                             f"got {window_backend!r}")
        self.window_backend = window_backend
        self._cache: OrderedDict[tuple[int, int], tuple[Any, Any, dict[int, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self._seeds: OrderedDict[int, int] = OrderedDict()  # id(body) -> the seed `handle` drew, for `observe`
        if paired is None:
            paired = os.environ.get(PAIRED_ENV) == "1"
        if paired:
            self.observe = self._observe  # the server pairs canary requests only when the pipeline has `observe`

    # -- per-snapshot objects ---------------------------------------------------------------------
    def _snapshot(self, state: Any) -> tuple[Any, dict[int, Any]]:
        """The Scorer of one snapshot and its window tables by scale (built once: many requests share a state)."""
        from mdq_flexattn.reward import Scorer

        key = (id(state), getattr(state, "seq", 0))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is state:
                self._cache.move_to_end(key)
                return hit[1], hit[2]
        scorer = Scorer(state, engine=self._engine)
        with self._lock:
            self._cache[key] = (state, scorer, {})  # holding the state keeps its id from being reused
            while len(self._cache) > 8:
                self._cache.popitem(last=False)
            return scorer, self._cache[key][2]

    def _window(self, scorer: Any, tables: dict[int, Any], scale: int) -> Any:
        from .attention import window_table

        if scale not in tables:
            tables[scale] = window_table(self.lm.chars(), scorer.policy.decide, scale)
        return tables[scale]

    # -- requests ---------------------------------------------------------------------------------
    def handle(self, route: str, body: Any, state: Any) -> tuple[dict[str, Any], list[Mapping[str, float]]]:
        """Answer one request under `state` (module docstring)."""
        req = self._request(route, body)
        seed = req.seed if req.seed is not None else secrets.randbits(63)
        with self._lock:
            self._seeds[id(body)] = seed
            while len(self._seeds) > 256:
                self._seeds.popitem(last=False)
        ctl = Controls.of(state)
        choices, usage, meta, observations = self._run(req, state, ctl, seed)
        return self._response(req, ctl, seed, choices, usage, meta), observations

    def _observe(self, route: str, body: Any, state: Any) -> list[Mapping[str, float]]:
        """The KPI observations the same request gives under `state`, with the same seed (a paired canary shadow)."""
        req = self._request(route, body)
        with self._lock:
            seed = self._seeds.pop(id(body), None)
        seed = seed if seed is not None else (req.seed if req.seed is not None else secrets.randbits(63))
        return self._run(req, state, Controls.of(state), seed)[3]

    def _request(self, route: str, body: Any) -> GenRequest:
        req = parse(route, body)
        if not self.lm.accepts(req.model):
            raise RequestError(404, f"model {req.model!r} is not served here; this server serves {self.lm.name!r}",
                               [Problem("unknown model", "$.model")])
        return req

    def _run(self, req: GenRequest, state: Any, ctl: Controls, seed: int) -> tuple[list, dict, dict, list]:
        """Generate, rank and pick for every prompt; return (choices, usage, mdq details, observations)."""
        from mdq_flexattn.window import WindowAttention

        scorer, tables = self._snapshot(state)
        window = self._window(scorer, tables, ctl.window_scale) if ctl.window else None
        k = max(ctl.best_of, req.n) if req.temperature > 0 else 1
        prompts = req.prompts or (None,)
        choices, observations = [], []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        meta: dict[str, Any] = {"candidates": k, "window_backend": None}
        for i, prompt in enumerate(prompts):
            ids = self.lm.encode(prompt, req.messages)
            gen = self.lm.generate(ids, k, max_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p,
                                   seed=seed + i, stop=req.stop, window=window,
                                   attn=WindowAttention(self.window_backend) if window is not None else None)
            meta["window_backend"] = gen.window_backend
            usage["prompt_tokens"] += gen.prompt_tokens
            usage["completion_tokens"] += gen.generated_tokens
            question = prompt if prompt is not None else req.question
            scores = [self._reward(scorer, question, c.text) for c in gen.candidates]
            rank = (lambda j: (scores[j][1], scores[j][0])) if ctl.rank_lexical else (lambda j: (scores[j][0],))
            order = sorted(range(k), key=lambda j: tuple(-x for x in rank(j))) if k > req.n else list(range(k))
            picked = order[:req.n] if k >= req.n else order * req.n  # greedy: one candidate, repeated
            spent = gen.generated_tokens / req.n
            for j in picked:
                c = gen.candidates[j]
                choices.append({"candidate": c, "reward": scores[j][0], "lexical": scores[j][1]})
                observations.append({"gen_reward": scores[j][0], "gen_lexical": scores[j][1],
                                     "gen_truncated": float(c.finish_reason == "length"), "gen_tokens_spent": spent,
                                     "gen_ms_per_token": 1000.0 * gen.seconds / max(gen.generated_tokens, 1)})
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return choices, usage, meta, observations

    @staticmethod
    def _reward(scorer: Any, question: str, text: str) -> tuple[float, float]:
        """(total reward, lexical reward) of `text` against `question`; an empty text earns nothing."""
        if not text.strip():
            return 0.0, 0.0
        totals = scorer.summary(question, text).totals
        return float(totals["reward_total"]), float(totals["ler_total"])

    def _response(self, req: GenRequest, ctl: Controls, seed: int, choices: list[dict], usage: dict,
                  meta: dict) -> dict[str, Any]:
        out = []
        for i, ch in enumerate(choices):
            c = ch["candidate"]
            body = {"message": {"role": "assistant", "content": c.text}} if req.chat else {"text": c.text}
            out.append({"index": i, **body, "logprobs": None, "finish_reason": c.finish_reason})
        return {"id": f"{'chatcmpl' if req.chat else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if req.chat else "text_completion", "created": int(time.time()),
                "model": self.lm.name, "system_fingerprint": f"mdq-state-{ctl.seq}", "choices": out, "usage": usage,
                "mdq": {"state": ctl.seq, "seed": seed, "best_of": ctl.best_of, **meta, "window": ctl.window,
                        "window_scale": ctl.window_scale if ctl.window else None,
                        "ranked_by": "lexical" if ctl.rank_lexical else "reward",
                        "rewards": [ch["reward"] for ch in choices], "lexical": [ch["lexical"] for ch in choices]}}
