"""Generation benchmark (issue #14): tokens/s of the `generate` pipeline against plain transformers
`model.generate` on the same model and prompts, with the window off (goal >= 0.9x) and on.

    flock /tmp/mdq-cpu.lock python benchmarks/generate.py [--quick] [--model smollm2-135m] [--max-tokens 48]

Greedy decoding (temperature 0, seed 0), the same chat prompts for every arm. Each (prompt, arm)
is timed `--repeats` times with the arms interleaved (their order rotated each time), so the
machine's load falls on all of them alike. A run's tokens/s is generated tokens / wall seconds: for the anchor, chat template +
tokenize + `model.generate` + decode; for the pipeline its whole `handle` (request checks, reward
scoring of the answer, the response). Reported per arm: the median over prompts of the
per-prompt median tokens/s, and the median (min..max) over prompts of the ratio to the anchor's
tokens/s on that prompt. `same_text` counts the prompts whose answer is the anchor's very text
(the window-off pipeline must match on every prompt; the windowed one attends to less).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

PROMPTS = ["What is the capital of France?",
           "Explain in two sentences what aspirin is used for.",
           "什么是阿司匹林？",
           "List three symptoms of influenza.",
           "Why should antibiotics not be used for viral infections?",
           "Write a short note on how to treat a mild fever at home."]
SEED = 0


def anchor(model: Any, tok: Any, prompt: str, max_tokens: int) -> tuple[int, float, str]:
    """Plain transformers: (generated tokens, seconds, text) of one greedy chat answer."""
    t0 = time.perf_counter()
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
    new = out[0, enc.input_ids.shape[1]:].tolist()
    eos = model.generation_config.eos_token_id
    eos = {eos} if isinstance(eos, int) else set(eos)
    n = next((i for i, t in enumerate(new) if t in eos), len(new))
    answer = tok.decode(new[:n], skip_special_tokens=True)
    return n, time.perf_counter() - t0, answer


def ours(pipeline: Any, state: Any, name: str, prompt: str, max_tokens: int) -> tuple[int, float, str]:
    """The pipeline: (generated tokens, seconds, text) of one greedy chat answer under `state`."""
    body = {"model": name, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "seed": SEED}
    t0 = time.perf_counter()
    r, _ = pipeline.handle("/v1/chat/completions", body, state)
    return r["usage"]["completion_tokens"], time.perf_counter() - t0, r["choices"][0]["message"]["content"]


def main() -> None:
    """Run every arm on every prompt, interleaved; write results/generate.json and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m", help="'smollm2-135m', a checkpoint or an `mdq quantize` directory")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 prompts, 24 tokens, 2 repeats")
    a = ap.parse_args()
    prompts, max_tokens, repeats = (PROMPTS[:2], 24, 2) if a.quick else (PROMPTS, a.max_tokens, a.repeats)

    import torch

    from mdq_generate.model import LM
    from mdq_generate.params import PARAMS
    from mdq_generate.pipeline import GeneratePipeline
    from mdq_quantkit.models import load
    from mdqcore.model.state import ControlState

    torch.manual_seed(SEED)
    model, tok = load(a.model)
    name = Path(a.model).name
    pipeline = GeneratePipeline(lm=LM.of(model, tok, name))
    scale = int(PARAMS["window_scale"][1])
    arms: dict[str, Any] = {
        "transformers generate (anchor)": None,
        "pipeline, window off": ControlState(seq=1),
        f"pipeline, window on (scale {scale})": ControlState({("param", "Op", "generate", "window"): 1.0}, seq=2),
    }

    def run(arm: str, prompt: str) -> tuple[int, float, str]:
        st = arms[arm]
        return anchor(model, tok, prompt, max_tokens) if st is None else ours(pipeline, st, name, prompt, max_tokens)

    for arm in arms:  # warm-up: the reward engine, the window table, the allocator
        run(arm, prompts[0])
    per: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for p in prompts:
        runs: dict[str, list[tuple[int, float, str]]] = {arm: [] for arm in arms}
        names = list(arms)
        for r in range(repeats):
            for arm in names[r % len(names):] + names[:r % len(names)]:  # rotated: no arm always runs first
                runs[arm].append(run(arm, p))
        base_text = runs["transformers generate (anchor)"][0][2]
        for arm, rs in runs.items():
            tps = statistics.median(n / s for n, s, _ in rs)
            per[arm].append({"prompt": p, "tokens": rs[0][0], "tokens_s": tps, "text": rs[0][2],
                             "same_text": rs[0][2] == base_text, "deterministic": len({r[2] for r in rs}) == 1})
    anchor_tps = [r["tokens_s"] for r in per["transformers generate (anchor)"]]
    rows = []
    for arm, rs in per.items():
        ratios = [r["tokens_s"] / b for r, b in zip(rs, anchor_tps)]
        goal = ">= 0.9" if arm == "pipeline, window off" else ("anchor" if arms[arm] is None else "measured")
        rows.append({"arm": arm, "tokens_s": statistics.median(r["tokens_s"] for r in rs),
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "same_text": f"{sum(r['same_text'] for r in rs)}/{len(rs)}", "goal": goal,
                     "tokens": sum(r["tokens"] for r in rs), "per_prompt": rs})
    extra = {"commit": _commit(), "model": a.model, "max_tokens": max_tokens, "repeats": repeats, "seed": SEED,
             "decoding": "greedy (temperature 0)", "torch_threads": torch.get_num_threads(),
             "versions": {p: version(p) for p in ("mdq-generate", "mdq-flexattn", "torch", "transformers")}}
    report("generate", f"Generation tokens/s, {name}, {len(prompts)} prompts x {repeats}, {max_tokens} new tokens",
           ["arm", "tokens_s", "ratio", "ratio_min", "ratio_max", "same_text", "tokens", "goal"], rows, extra)


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
