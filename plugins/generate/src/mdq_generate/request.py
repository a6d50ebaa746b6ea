"""OpenAI request bodies -> one checked `GenRequest`, or RequestError with every problem at its `$.path`.

Fields served (as in OpenAI's API): model, prompt (completions: a string or a list of strings)
or messages (chat: role + text content), max_tokens (chat also max_completion_tokens),
temperature, top_p, n, seed, stop, user, stream (false only), and mdq's routing `key`. A field OpenAI defines but this
server does not implement is accepted at its neutral value (presence_penalty 0, logprobs null,
...) and refused otherwise, so a client never silently gets something other than it asked
for. `best_of` is refused: best-of-n is the operator's, set in the control state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from mdqcore.errors import Problem, RequestError

MAX_TOKENS = 2048  # per choice; a CPU generates tens of tokens a second
MAX_N = 8
MAX_PROMPTS = 8
MAX_MESSAGES = 256
MAX_CHARS = 100_000  # per prompt or message
MAX_STOP = 4
DEFAULT_MAX_TOKENS = {"/v1/completions": 16, "/v1/chat/completions": 128}  # OpenAI's legacy default for completions
ROLES = ("system", "developer", "user", "assistant")

# OpenAI fields this server does not implement: accepted only at the values meaning "not used"
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "logprobs": (None, False), "top_logprobs": (None, 0),
    "echo": (False,), "suffix": (None, ""), "logit_bias": (None, {}), "stream_options": (None,), "tools": (None, []),
    "tool_choice": (None, "none"), "response_format": (None, {"type": "text"}), "parallel_tool_calls": (None, False, True),
    "service_tier": (None, "auto", "default"), "store": (None, False), "metadata": (None, {}),
}
# `key`: mdq's routing key (which live-canary arm a request falls in), as `mdq serve` reads it from a body
COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "seed", "stop", "stream", "user", "best_of", "key"}
FIELDS = {"/v1/completions": COMMON | {"prompt"},
          "/v1/chat/completions": COMMON | {"messages", "max_completion_tokens"}}


@frozen
class GenRequest:
    """One checked request: what to generate from, and how."""

    route: str
    model: str
    prompts: tuple[str, ...]  # completions: one or more prompts; chat: empty
    messages: tuple[Mapping[str, str], ...]  # chat: {role, content} with text content; completions: empty
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int | None
    stop: tuple[str, ...]

    @property
    def chat(self) -> bool:
        """Whether this is a chat completion."""
        return self.route == "/v1/chat/completions"

    @property
    def question(self) -> str:
        """The text a chat answer is judged against: the last user message (empty when there is none)."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1 and false is not 0."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _int(body: Mapping[str, Any], key: str, lo: int, hi: int, default: int | None, problems: list[Problem]) -> Any:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        problems.append(Problem(f"expected an integer, got {type(v).__name__}", f"$.{key}"))
    elif not lo <= v <= hi:
        problems.append(Problem(f"{v} is outside [{lo}, {hi}]", f"$.{key}"))
    else:
        return v
    return default


def _num(body: Mapping[str, Any], key: str, lo: float, hi: float, default: float, problems: list[Problem],
         *, open_lo: bool = False) -> float:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        problems.append(Problem(f"expected a number, got {v!r}", f"$.{key}"))
    elif not (lo < v if open_lo else lo <= v) or v > hi:
        problems.append(Problem(f"{v} is outside {'(' if open_lo else '['}{lo:g}, {hi:g}]", f"$.{key}"))
    else:
        return float(v)
    return default


def _text(v: Any, path: str, problems: list[Problem]) -> str:
    if not isinstance(v, str):
        problems.append(Problem(f"expected a string, got {type(v).__name__}", path))
        return ""
    if len(v) > MAX_CHARS:
        problems.append(Problem(f"{len(v):,} characters, over the limit of {MAX_CHARS:,}", path))
    return v


def _prompts(v: Any, problems: list[Problem]) -> tuple[str, ...]:
    if v is None:
        problems.append(Problem("required: a string or a list of strings", "$.prompt"))
        return ()
    items, path = ([v], "$.prompt") if isinstance(v, str) else (v, None)
    if not isinstance(items, list) or not items:
        problems.append(Problem("expected a string or a non-empty list of strings", "$.prompt"))
        return ()
    if len(items) > MAX_PROMPTS:
        problems.append(Problem(f"{len(items)} prompts, over the limit of {MAX_PROMPTS}", "$.prompt"))
    out = []
    for i, p in enumerate(items):
        at = path or f"$.prompt[{i}]"
        if isinstance(p, int) or (isinstance(p, list) and all(isinstance(t, int) for t in p)):
            problems.append(Problem("token-id prompts are not supported: send the text", at))
            continue
        p = _text(p, at, problems)
        if isinstance(items[i], str) and not p:
            problems.append(Problem("empty prompt: give at least one character", at))
        out.append(p)
    return tuple(out)


def _content(v: Any, path: str, problems: list[Problem]) -> str:
    if isinstance(v, list):  # OpenAI's content parts: only text parts can be served
        parts = []
        for j, part in enumerate(v):
            if not isinstance(part, dict) or part.get("type") != "text":
                problems.append(Problem("only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                                        f"{path}[{j}]"))
                continue
            parts.append(_text(part.get("text"), f"{path}[{j}].text", problems))
        return "".join(parts)
    return _text(v, path, problems)


def _messages(v: Any, problems: list[Problem]) -> tuple[dict[str, str], ...]:
    if not isinstance(v, list) or not v:
        problems.append(Problem("required: a non-empty list of {role, content} messages", "$.messages"))
        return ()
    if len(v) > MAX_MESSAGES:
        problems.append(Problem(f"{len(v)} messages, over the limit of {MAX_MESSAGES}", "$.messages"))
    out = []
    for i, m in enumerate(v):
        at = f"$.messages[{i}]"
        if not isinstance(m, dict):
            problems.append(Problem("expected an object {role, content}", at))
            continue
        for k in sorted(set(m) - {"role", "content", "name"}):
            problems.append(Problem(f"unsupported message field {k!r} (tool calls are not served)", f"{at}.{k}"))
        role = m.get("role")
        if role not in ROLES:
            problems.append(Problem(f"role must be one of {', '.join(ROLES)}, got {role!r}", f"{at}.role"))
        if "name" in m and not isinstance(m["name"], str):
            problems.append(Problem("expected a string", f"{at}.name"))
        content = _content(m.get("content"), f"{at}.content", problems)
        out.append({"role": "system" if role == "developer" else str(role), "content": content})
    return tuple(out)


def _stop(v: Any, problems: list[Problem]) -> tuple[str, ...]:
    if v is None:
        return ()
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or len(items) > MAX_STOP:
        problems.append(Problem(f"expected a string or a list of at most {MAX_STOP} strings", "$.stop"))
        return ()
    out = []
    for i, s in enumerate(items):
        at = "$.stop" if isinstance(v, str) else f"$.stop[{i}]"
        if not isinstance(s, str) or not s:
            problems.append(Problem("expected a non-empty string", at))
        else:
            out.append(s)
    return tuple(out)


def parse(route: str, body: Any) -> GenRequest:
    """Check one request body for `route`; raise RequestError (400 for streaming, else 422) listing every problem."""
    if route not in FIELDS:
        raise RequestError(404, f"the generate pipeline does not answer {route}")
    if not isinstance(body, dict):
        raise RequestError(422, "the body must be a JSON object", [Problem("expected an object", "$")])
    if body.get("stream") not in (None, False):
        if body.get("stream") is True:
            raise RequestError(400, "streaming is not supported yet: send \"stream\": false (or leave it out) "
                                    "and read the whole response", [Problem("streaming is not supported yet", "$.stream")])
        raise RequestError(422, "the request cannot be served", [Problem("expected true or false", "$.stream")])
    problems: list[Problem] = []
    for k in sorted(set(body) - FIELDS[route]):
        if k in NEUTRAL:
            if not any(_same(body[k], x) for x in NEUTRAL[k]):
                problems.append(Problem(f"{k!r} is not supported by this server; leave it out", f"$.{k}"))
        else:
            problems.append(Problem(f"unknown field {k!r}", f"$.{k}"))
    if body.get("best_of") is not None:
        problems.append(Problem("best-of-n is set by the control state (operator 'generate', parameter 'best_of'), "
                                "not by the request; leave it out", "$.best_of"))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        problems.append(Problem("required: the model name (GET it from the operator or the server's log)", "$.model"))
    max_tokens = _int(body, "max_tokens", 1, MAX_TOKENS, DEFAULT_MAX_TOKENS[route], problems)
    if route == "/v1/chat/completions" and body.get("max_completion_tokens") is not None:
        mct = _int(body, "max_completion_tokens", 1, MAX_TOKENS, None, problems)
        if body.get("max_tokens") is not None and mct is not None and mct != max_tokens:
            problems.append(Problem(f"disagrees with max_tokens ({max_tokens}); send one of the two",
                                    "$.max_completion_tokens"))
        max_tokens = mct if mct is not None else max_tokens
    temperature = _num(body, "temperature", 0.0, 2.0, 1.0, problems)
    top_p = _num(body, "top_p", 0.0, 1.0, 1.0, problems, open_lo=True)
    n = _int(body, "n", 1, MAX_N, 1, problems)
    seed = _int(body, "seed", -(2**63), 2**63 - 1, None, problems)
    stop = _stop(body.get("stop"), problems)
    for k in ("user", "key"):
        if k in body and not isinstance(body[k], str):
            problems.append(Problem("expected a string", f"$.{k}"))
    if route == "/v1/completions":
        prompts, messages = _prompts(body.get("prompt"), problems), ()
    else:
        prompts, messages = (), _messages(body.get("messages"), problems)
    if problems:
        raise RequestError(422, "the request cannot be served", problems)
    return GenRequest(route, model, prompts, messages, max_tokens, temperature, top_p, n, seed, stop)
