"""The served reward pipeline: what an RL trainer calls, under whatever control state is live.

    POST /v1/reward   {"items": [{"question", "answer", "key"?, "reference"?}], "details": false}
                      -> {"rewards": [...], "items": [{"reward", "total", "len_cost", "hits"[, "steps"]}]}
    POST /get_reward  {"query": [prompt + response, ...], "prompts": [prompt, ...]}   (OpenRLHF's remote RM)
                      -> {"rewards": [...]}

`reward` is the answer's lexical reward, eta2 * sum of delta_t over its hits: what tells a domain
answer from another, and what an RL trainer should optimise. `total` is the sum of R_t over every
character, which adds the per-character terms (the window policy's length costs, chi_soft
against a reference, the readability term): the figure for training the window policy itself.
Each scored answer gives one KPI observation, judged by live canaries:

    lexical        the lexical reward                                       (higher is better)
    term_density   distinct domain terms hit per 100 characters             (higher is better)
    general_share  share of the lexical reward earned by general words      (lower is better)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from mdqcore.errors import Problem, RequestError
from mdqcore.model.types import json_type

MAX_ITEMS = 4096
MAX_CHARS = 200_000  # per answer: scoring is linear, but a reward request is not a document store


_MISSING = object()


def _text(x: Any, path: str, problems: list[Problem], *, empty: bool = False) -> str:
    if x is _MISSING:
        problems.append(Problem("required field missing", path))
        return ""
    if not isinstance(x, str):
        problems.append(Problem(f"expected a string, got {json_type(x)}", path))
        return ""
    if not x.strip() and not empty:
        problems.append(Problem("empty text", path))
    if len(x) > MAX_CHARS:
        problems.append(Problem(f"{len(x):,} characters, over the limit of {MAX_CHARS:,}", path))
    return x


def parse(route: str, body: Any) -> tuple[list[dict[str, str]], bool]:
    """Turn a request body into items {question, answer, reference?}; raise RequestError(422) with every problem."""
    problems: list[Problem] = []
    if not isinstance(body, dict):
        raise RequestError(422, "the body must be a JSON object", [Problem("expected an object", "$")])
    items: list[dict[str, str]] = []
    if route == "/get_reward":
        query, prompts = body.get("query"), body.get("prompts")
        if not isinstance(query, list):
            raise RequestError(422, "OpenRLHF's request needs `query`", [Problem("expected an array", "$.query")])
        if prompts is not None and (not isinstance(prompts, list) or len(prompts) != len(query)):
            raise RequestError(422, "`prompts` must match `query` one to one",
                               [Problem(f"expected an array of {len(query)}", "$.prompts")])
        for i, q in enumerate(query):
            full = _text(q, f"$.query[{i}]", problems)
            prompt = _text(prompts[i], f"$.prompts[{i}]", problems, empty=True) if prompts else ""
            answer = full[len(prompt):] if prompt and full.startswith(prompt) else full
            items.append({"question": prompt, "answer": answer})
        details = False
    else:
        raw = body.get("items")
        extra = sorted(set(body) - {"items", "details", "key"})
        if extra:
            problems.append(Problem(f"unknown key {extra[0]!r}", f"$.{extra[0]}"))
        if not isinstance(raw, list) or not raw:
            raise RequestError(422, "the request needs `items`", [Problem("expected a non-empty array", "$.items")])
        for i, it in enumerate(raw):
            if not isinstance(it, dict):
                problems.append(Problem("expected an object", f"$.items[{i}]"))
                continue
            for k in sorted(set(it) - {"question", "answer", "key", "reference"}):
                problems.append(Problem(f"unknown key {k!r}", f"$.items[{i}].{k}"))
            item = {"question": _text(it.get("question", ""), f"$.items[{i}].question", problems, empty=True),
                    "answer": _text(it.get("answer", _MISSING), f"$.items[{i}].answer", problems)}
            if "reference" in it:
                item["reference"] = _text(it["reference"], f"$.items[{i}].reference", problems)
            items.append(item)
        details = body.get("details", False)
        if not isinstance(details, bool):
            problems.append(Problem("expected true or false", "$.details"))
    if len(items) > MAX_ITEMS:
        problems.append(Problem(f"{len(items):,} items, over the limit of {MAX_ITEMS:,}", "$"))
    if problems:
        raise RequestError(422, "the request cannot be scored", problems)
    return items, details


class RewardPipeline:
    """Scores answers with the lexical reward of the request's snapshot (one Scorer per snapshot, cached)."""

    def __init__(self, engine: Any = None) -> None:
        self._engine = engine
        self._scorers: OrderedDict[tuple[int, int], tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def scorer(self, state: Any) -> Any:
        """Return the Scorer of one snapshot (built once: a live state is shared by many requests)."""
        from .reward import Scorer

        key = (id(state), state.seq)
        with self._lock:
            hit = self._scorers.get(key)
            if hit is not None and hit[0] is state:
                self._scorers.move_to_end(key)
                return hit[1]
        scorer = Scorer(state, engine=self._engine)
        with self._lock:
            self._scorers[key] = (state, scorer)  # holding the state keeps its id from being reused
            while len(self._scorers) > 8:
                self._scorers.popitem(last=False)
        return scorer

    def _score(self, items: list[dict[str, str]], state: Any, details: bool) -> tuple[list[dict], list[dict]]:
        scorer = self.scorer(state)
        out, observations = [], []
        for it in items:
            s = scorer.summary(it["question"], it["answer"], it.get("reference"))
            lex = s.totals["ler_total"]
            general = sum(h.delta for h in s.hits if h.general)
            domain = {h.term for h in s.hits if not h.general}
            row = {"reward": lex, "total": s.totals["reward_total"], "len_cost": s.totals["len_cost_total"],
                   "hits": [h.as_dict() for h in s.hits if h.delta or details]}
            if details:
                row["steps"] = [st.as_dict() for st in scorer.score(it["question"], it["answer"], it.get("reference"))]
            out.append(row)
            observations.append({"lexical": lex, "term_density": 100.0 * len(domain) / max(len(it["answer"]), 1),
                                 "general_share": general / lex if lex > 0 else 0.0})
        return out, observations

    def handle(self, route: str, body: Any, state: Any) -> tuple[Any, list[Mapping[str, float]]]:
        """Answer one request under `state` (module docstring)."""
        items, details = parse(route, body)
        try:
            rows, observations = self._score(items, state, details)
        except ValueError as exc:  # the scorer refuses what it cannot score (documented in reward.py)
            raise RequestError(422, str(exc)) from None
        rewards = [r["reward"] for r in rows]
        if route == "/get_reward":
            return {"rewards": rewards}, observations
        return {"rewards": rewards, "items": rows}, observations

    def observe(self, route: str, body: Any, state: Any) -> list[Mapping[str, float]]:
        """The KPI observations the same request would give under `state` (a paired shadow for live canaries)."""
        items, _ = parse(route, body)
        return self._score(items, state, False)[1]


def reward_func(prompts: list[str], completions: list[Any], *, url: str | None = None, state: Any = None,
                **_: Any) -> list[float]:
    """A TRL-style reward function: one reward per completion, in-process (under `state`) or from a server at `url`.

    Completions may be strings or chat messages ([{"role": "assistant", "content": ...}]), as TRL passes them.
    """
    answers = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    questions = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
    body = {"items": [{"question": q, "answer": a} for q, a in zip(questions, answers)]}
    if url is not None:
        import httpx

        r = httpx.post(url.rstrip("/") + "/v1/reward", json=body, timeout=60)
        r.raise_for_status()
        return list(r.json()["rewards"])
    if state is None:
        from mdqcore.model.state import ControlState

        state = ControlState()
    return list(RewardPipeline().handle("/v1/reward", body, state)[0]["rewards"])
