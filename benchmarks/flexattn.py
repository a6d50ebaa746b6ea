"""Flex-Attn benchmarks (issue #5): matcher throughput vs raw pyahocorasick, reward steps/s,
FlexAttention window vs dense masked SDPA.

    python benchmarks/flexattn.py [--quick] [--device cpu|cuda] [--attn-only]

Matcher: a >= 50,000-term catalog (the most frequent 2-8 character words of jieba's
dictionary) over >= 1 MB of Chinese text sampled from the same dictionary by frequency (a
synthetic Zipf corpus: no Chinese corpus ships offline); the anchor is a raw pyahocorasick
automaton over the same words, consumed with `list(A.iter_long(text))`. Attention: B=1, H=8,
D=64, random windows in {2,3,4,6} (L_h) and, as a second case, in [1, 256]; peak memory is
the process's peak RSS growth on CPU (one subprocess per case) or torch's peak allocation on GPU.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def corpus(n_terms: int, min_bytes: int, seed: int = 0) -> tuple[list[str], str]:
    """Return (catalog terms, text): the most frequent dictionary words and a frequency-sampled text."""
    from mdq_flexattn.catalog import is_punct
    from mdq_flexattn.idf import default_frequencies

    f = default_frequencies()
    words = sorted(f.counts.items(), key=lambda kv: -kv[1])
    terms = [w for w, _ in words if len(w) in (2, 3, 4, 5, 6, 8) and not any(is_punct(c) for c in w)][:n_terms]
    rng = random.Random(seed)
    pool = [w for w, _ in words[:200_000]]
    weights = [c for _, c in words[:200_000]]
    parts: list[str] = []
    size = 0
    while size < min_bytes:
        chunk = rng.choices(pool, weights, k=2000)
        text = "".join(w + ("，" if i % 9 == 8 else "。" if i % 31 == 30 else "") for i, w in enumerate(chunk))
        parts.append(text)
        size += len(text.encode("utf-8"))
    return terms, "".join(parts)


def best_of(fn, repeat: int) -> float:
    """Return the best wall time of `repeat` calls, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matcher_rows(quick: bool) -> list[dict]:
    """Time Matcher.scan against raw iter_long on the same automaton contents and text."""
    import ahocorasick

    from mdq_flexattn.catalog import Catalog, Entry
    from mdq_flexattn.matcher import Matcher

    terms, text = corpus(50_000 if quick else 60_000, 1_000_000 if quick else 2_000_000)
    t0 = time.perf_counter()
    m = Matcher(Catalog([Entry(t) for t in terms]))
    build = time.perf_counter() - t0
    raw = ahocorasick.Automaton()
    for t in terms:
        raw.add_word(t, t)
    raw.make_automaton()
    mb = len(text.encode("utf-8")) / 1e6
    repeat = 3 if quick else 5
    ours, anchor = [], []
    for _ in range(repeat):  # interleaved so that machine noise hits both alike
        anchor.append(best_of(lambda: list(raw.iter_long(text)), 1))
        ours.append(best_of(lambda: m.scan(text), 1))
    t_raw, t_ours = min(anchor), min(ours)
    assert [v for _e, v in raw.iter_long(text)] == [t for _s, t in m.scan(text)]  # same hits, or the ratio means nothing
    return [{"case": f"scan {mb:.2f} MB, {len(terms):,} terms", "ours_s": t_ours, "anchor_s": t_raw,
             "ours_MB_s": mb / t_ours, "anchor_MB_s": mb / t_raw, "ratio": t_raw / t_ours,
             "note": f"throughput ours/raw iter_long (goal >= 0.8); automaton build {build:.2f} s"}]


def reward_rows(quick: bool) -> list[dict]:
    """Reward scoring steps per second on the reference target and on synthetic text."""
    from mdq_flexattn.reward import Scorer
    from mdq_flexattn.engine import default_engine

    spec = json.loads((Path(__file__).resolve().parents[1] / "plugins/flexattn/src/mdq_flexattn/data/scenario.json")
                      .read_text(encoding="utf-8"))
    default_engine()
    scorer = Scorer()
    _, text = corpus(1000, 30_000 if quick else 100_000, seed=1)
    rows = []
    for name, q, t in (("reference scenario (71 chars)", spec["question"], spec["target"]),
                       (f"synthetic text ({len(text):,} chars)", spec["question"], text)):
        n = max(1, 20_000 // len(t))
        secs = best_of(lambda: [scorer.score(q, t) for _ in range(n)], 3)
        rows.append({"case": f"reward {name}", "ours_s": secs / n, "steps_per_s": n * len(t) / secs})
    return rows


def attn_case(T: int, backend: str, device: str, wmax: int) -> dict:
    """Run one attention case in this process and return time and peak memory."""
    import torch

    from mdq_flexattn.window import dense_window_attention, flex_window_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 8, T, 64, device=device) for _ in range(3))
    w = (torch.tensor([2, 3, 4, 6])[torch.randint(0, 4, (T,))] if wmax == 6
         else torch.randint(1, wmax + 1, (T,))).to(device)
    if backend == "dense":
        fn = lambda: dense_window_attention(q, k, v, w)  # noqa: E731
    else:
        fn = lambda: flex_window_attention(q, k, v, w, compile=backend == "flex-compiled")  # noqa: E731
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    sync()  # warm-up (and compilation)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    secs = best_of(lambda: (fn(), sync()), 3)
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) * 1024)
    return {"secs": secs, "peak_mb": peak / 2**20}


def attn_rows(quick: bool, device: str) -> list[dict]:
    """FlexAttention window vs dense masked SDPA, one subprocess per case on CPU."""
    rows = []
    backends = ["dense", "flex", "flex-compiled"]
    for T in (1024,) if quick else (1024, 4096):
        for wmax in (6, 256):
            res = {}
            for b in backends:
                if device == "cpu":
                    out = subprocess.run([sys.executable, __file__, "--case", f"{T},{b},{device},{wmax}"],
                                         capture_output=True, text=True)
                    if out.returncode != 0:
                        res[b] = {"error": out.stderr.strip().splitlines()[-1][:120]}
                        continue
                    res[b] = json.loads(out.stdout.strip().splitlines()[-1])
                else:
                    res[b] = attn_case(T, b, device, wmax)
            d = res["dense"]
            for b in backends[1:]:
                r = res[b]
                if "error" in r:
                    rows.append({"case": f"attn T={T} L_h<={wmax} {b} ({device})", "note": r["error"]})
                    continue
                rows.append({"case": f"attn T={T} L_h<={wmax} {b} ({device})", "ours_s": r["secs"],
                             "anchor_s": d["secs"], "ratio": d["secs"] / r["secs"],
                             "ours_peak_MB": r["peak_mb"], "anchor_peak_MB": d["peak_mb"],
                             "note": "anchor: dense masked SDPA; ratio > 1 = ours faster"})
    return rows


def main() -> None:
    """Run the benchmarks and write results/flexattn.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="Smaller inputs (for a smoke run).")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--attn-only", action="store_true")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        T, b, dev, wmax = a.case.split(",")
        print(json.dumps(attn_case(int(T), b, dev, int(wmax))))
        return
    rows = [] if a.attn_only else matcher_rows(a.quick) + reward_rows(a.quick)
    rows += attn_rows(a.quick, a.device)
    name = "flexattn" if a.device == "cpu" and not a.attn_only else f"flexattn_attn_{a.device}"
    report(name, "Flex-Attn", ["case", "ours_s", "anchor_s", "ratio", "ours_MB_s", "anchor_MB_s", "steps_per_s",
                               "ours_peak_MB", "anchor_peak_MB", "note"], rows,
           seeds={"matcher_corpus": 0, "reward_text": 1, "attention_inputs": "torch.manual_seed(0)"})


if __name__ == "__main__":
    main()
