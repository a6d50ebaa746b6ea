"""Flex-Attn benchmarks (issues #5, #17): matcher throughput vs raw pyahocorasick, reward
scoring throughput vs the matcher's scan, FlexAttention window vs dense masked SDPA.

    python benchmarks/flexattn.py [--quick] [--device cpu|cuda] [--attn-only | --no-attn]

Matcher: the shipped default catalog over >= 1 MB of medical text (the labelled evaluation's
good answers in a seeded random order), and a >= 50,000-term catalog (the most frequent 2-8
character words of jieba's dictionary) over Chinese text sampled from the same dictionary by
frequency (a synthetic Zipf corpus: no Chinese corpus ships offline); the anchor is a raw
pyahocorasick automaton over the same forms, consumed with `list(A.iter_long(text))`.
Scoring: `Scorer.summary` (totals and hits) and `Scorer.score` (one record per character) on
10 KB, 100 KB and 1 MB of the medical text, against `Matcher.scan` on the same text: medians
of CPU time over interleaved repeats (41, 15 and 5), with the wall-time medians beside them. Attention: B=1, H=8,
D=64, random windows in {2,3,4,6} (L_h) and, as a second case, in [1, 256]; peak memory is
the process's peak RSS growth on CPU (one subprocess per case) or torch's peak allocation on GPU.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
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


def medical_text(min_bytes: int, seed: int = 0) -> str:
    """Return Chinese medical text: the evaluation's good answers in a seeded random order, repeated."""
    root = Path(__file__).resolve().parents[1] / "plugins/flexattn/data/eval"
    goods = [json.loads(x)["good"] for f in ("dev.jsonl", "test.jsonl")
             for x in (root / f).read_text(encoding="utf-8").splitlines() if x.strip()]
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < min_bytes:
        g = rng.choice(goods)
        parts.append(g)
        size += len(g.encode("utf-8"))
    return "".join(parts)


def matcher_rows(quick: bool) -> list[dict]:
    """Time Matcher.scan against raw iter_long on the same automaton contents and text."""
    import ahocorasick

    from mdq_flexattn.catalog import Catalog, Entry
    from mdq_flexattn.matcher import Matcher

    rows = []
    default = Catalog.default()
    _, zipf = corpus(1000, 1_000_000 if quick else 2_000_000)
    terms, _ = corpus(50_000 if quick else 60_000, 0)
    cases = [(f"default catalog ({len(default):,} terms), medical text", default,
              medical_text(1_000_000 if quick else 2_000_000)),
             (f"{len(terms):,} dictionary words, Zipf text", Catalog([Entry(t) for t in terms]), zipf)]
    for name, cat, text in cases:
        t0 = time.perf_counter()
        m = Matcher(cat)
        build = time.perf_counter() - t0
        raw = ahocorasick.Automaton()
        for form, term in cat.surface.items():
            raw.add_word(form, term)
        raw.make_automaton()
        mb = len(text.encode("utf-8")) / 1e6
        ours, anchor = [], []
        for _ in range(3 if quick else 5):  # interleaved so that machine noise hits both alike
            anchor.append(best_of(lambda: list(raw.iter_long(text)), 1))
            ours.append(best_of(lambda: m.scan(text), 1))
        t_raw, t_ours = min(anchor), min(ours)
        assert [v for _e, v in raw.iter_long(text)] == [t for _s, t in m.scan(text)]  # same hits, or the ratio means nothing
        rows.append({"case": f"scan {mb:.2f} MB, {name}", "ours_s": t_ours, "anchor_s": t_raw,
                     "ours_MB_s": mb / t_ours, "anchor_MB_s": mb / t_raw, "ratio": t_raw / t_ours,
                     "note": f"throughput Matcher.scan / raw iter_long (goal >= 0.8); automaton build {build:.2f} s"})
    return rows


def medians(fns: dict[str, object], repeat: int) -> dict[str, tuple[float, float]]:
    """Return {name: (median CPU seconds, median wall seconds)} over `repeat` interleaved rounds.

    CPU time (this process's) is the figure: on a shared machine wall time mostly measures the
    other processes; the rounds are interleaved so that what noise remains hits every case alike.
    """
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    return {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in fns}


def scoring_rows(quick: bool) -> list[dict]:
    """Scoring time against Matcher.scan on the same medical text at 10 KB, 100 KB and 1 MB (medians)."""
    from mdq_flexattn.reward import Scorer

    scorer = Scorer()
    q = "为什么奥司他韦能治疗流感？"
    text = medical_text(1_000_000, seed=1).encode("utf-8")
    rows, prev = [], {}
    for n in (10_000, 100_000, 1_000_000):
        t = text[:n].decode("utf-8", errors="ignore")
        scorer.score(q, t)  # warm: the question's profile, term relations and per-character tables are cached, as when serving
        repeat = {10_000: 41, 100_000: 15, 1_000_000: 5}[n] // (3 if quick else 1) or 1
        m = medians({"scan": lambda: scorer.matcher.scan(t), "summary": lambda: scorer.summary(q, t),
                     "steps": lambda: scorer.score(q, t)}, repeat)
        for path in ("summary", "steps"):
            secs, wall = m[path]
            rows.append({"case": f"score {n // 1000:,} KB ({len(t):,} chars), Scorer.{'score' if path == 'steps' else path}",
                         "ours_s": secs, "anchor_s": m["scan"][0], "ratio": m["scan"][0] / secs,
                         "growth_10x": secs / prev[path] if path in prev else None,
                         "anchor_growth_10x": m["scan"][0] / prev["scan"] if "scan" in prev else None,
                         "ours_wall_s": wall, "anchor_wall_s": m["scan"][1], "repeats": repeat,
                         "note": "medians of CPU time; anchor: Matcher.scan on the same text; ratio = scoring "
                                 "throughput / scan's (goal >= 0.25); growth_10x = time / time at a tenth of the "
                                 "text (goal <= 12)"})
        prev = {k: v[0] for k, v in m.items()}
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
    ap.add_argument("--no-attn", action="store_true", help="Skip the attention cases (results go to flexattn_text.json).")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case:
        T, b, dev, wmax = a.case.split(",")
        print(json.dumps(attn_case(int(T), b, dev, int(wmax))))
        return
    rows = [] if a.attn_only else matcher_rows(a.quick) + scoring_rows(a.quick)
    if not a.no_attn:
        rows += attn_rows(a.quick, a.device)
    name = ("flexattn_text" if a.no_attn else "flexattn") if a.device == "cpu" and not a.attn_only \
        else f"flexattn_attn_{a.device}"
    extra = {"commit": _commit(), "seeds": {"zipf_text": 0, "medical_text": [0, 1]},
             "versions": {p: version(p) for p in ("mdq-flexattn", "pyahocorasick", "torch")}}
    report(name, "Flex-Attn", ["case", "ours_s", "anchor_s", "ratio", "growth_10x", "anchor_growth_10x", "ours_MB_s",
                               "anchor_MB_s", "ours_peak_MB", "anchor_peak_MB", "note"], rows, extra)


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
