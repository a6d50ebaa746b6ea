"""Quantizer backends on SmolLM2-135M (issue #6): perplexity, wall time and file size, one run.

    python benchmarks/quant.py [--samples 32] [--seqlen 512] [--tokens 8192] [--configs w4g128,w3g128,w4g64]
                               [--backends rtn,gptq,awq] [--spread-seeds 1-4] [--spread-backends gptq,awq] [--quick]

Same calibration windows and evaluation tokens for every backend (protocol in
mdq_quantkit/data.py: pydoc_data.topics, first half of the tokens for calibration, second half
for evaluation, non-overlapping windows). Each quantized model is saved (safetensors + JSON),
loaded back, and evaluated as loaded. gptqmodel is not installed here (it needs a CUDA build),
so optimum+gptqmodel could not be run as an in-run anchor; the issue's reference figures are
printed beside ours, labelled as such. GPTQ and AWQ are also run on more calibration draws
(`--spread-seeds`): the table's `spread` gives each one's perplexity over all its draws (draw 0
included) as mean, sd, min and max.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import parse_seeds, report, spread  # noqa: E402

# measured by the issue's author on this kind of machine with their own protocol (not comparable 1:1)
ISSUE_REFERENCE = {"fp32": 12.05, "rtn w4g128": 15.80, "optimum+gptqmodel gptq w4g128": 14.05,
                   "optimum+gptqmodel gptq w3g128": 21.45, "llm-compressor gptq w4g64": 13.19}
ISSUE_REFERENCE_S = {"gptq w4g128": 200.0, "gptq w3g128": 184.0}  # the anchor's wall time, issue's figures


def main() -> None:
    """Quantize with every backend and configuration, evaluate, write results/quant.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--configs", default="w4g128,w3g128,w4g64")
    ap.add_argument("--backends", default="rtn,gptq,awq",
                    help="gptq = act-order + true-sequential (the defaults); gptq-fast = Hessians from the "
                         "unquantized block (no longer faster, kept for comparison)")
    ap.add_argument("--spread-seeds", default="1-4",
                    help="extra calibration draws, to show how far perplexity moves between equally valid "
                         "calibration sets ('' for none)")
    ap.add_argument("--spread-backends", default="gptq,awq")
    ap.add_argument("--spread-configs", default="w4g128,w3g128")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny calibration and evaluation, w4g128 only")
    a = ap.parse_args()
    if a.quick:
        a.samples, a.seqlen, a.tokens, a.configs = 2, 128, 512, "w4g128"
        a.backends, a.spread_seeds, a.spread_backends, a.spread_configs = "rtn,gptq", "1", "gptq", "w4g128"
    try:
        spread_seeds = parse_seeds(a.spread_seeds) if a.spread_seeds.strip() else []
    except ValueError as exc:
        ap.error(f"--spread-seeds: {exc}")

    import torch

    from mdq_awq.awq import AWQ
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.backends import RTN, quantize_model
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.data import calibration_samples, corpus_text, perplexity, split_tokens, tokenize
    from mdq_quantkit.io import load_quantized, save_quantized
    from mdq_quantkit.models import load, smollm2_dir

    torch.set_num_threads(max(1, torch.get_num_threads()))
    src = smollm2_dir()
    fp32_bytes = (src / "model.safetensors").stat().st_size
    model, tok = load("smollm2-135m")
    pool, ev = split_tokens(tokenize(tok, corpus_text()))
    calib = calibration_samples(pool, a.samples, a.seqlen)
    rows = []
    t0 = time.perf_counter()
    base = perplexity(model, ev, seqlen=a.seqlen, tokens=a.tokens)
    rows.append({"model": "fp32", "ppl": base["ppl"], "quant_s": 0.0, "eval_s": time.perf_counter() - t0,
                 "file_MB": fp32_bytes / 2**20, "file_ratio": 1.0, "reference_ppl": ISSUE_REFERENCE["fp32"]})
    print(f"fp32 ppl {base['ppl']:.3f}", flush=True)
    backends = {"rtn": RTN, "gptq": GPTQ, "gptq-fast": lambda: GPTQ(true_sequential=False), "awq": AWQ}
    tmp = Path(tempfile.mkdtemp(prefix="mdq-quant-bench-"))
    try:
        jobs = [(conf, name, 0) for conf in a.configs.split(",") for name in a.backends.split(",")]
        jobs += [(conf, name, seed) for seed in spread_seeds for conf in a.spread_configs.split(",")
                 for name in a.spread_backends.split(",")]
        for conf, name, seed in jobs:
            bits, group = (int(x) for x in conf[1:].split("g"))
            m, _ = load("smollm2-135m")
            samples = calib if seed == 0 else calibration_samples(pool, a.samples, a.seqlen, seed=seed)
            t0 = time.perf_counter()
            quantize_model(m, QuantConfig(bits, group), backends[name](), samples)
            q_s = time.perf_counter() - t0
            out = save_quantized(m, tmp / f"{name}-{conf}", tok)
            size = (out / "model.safetensors").stat().st_size
            loaded = load_quantized(out)
            t0 = time.perf_counter()
            res = perplexity(loaded, ev, seqlen=a.seqlen, tokens=a.tokens)
            key = f"{name} {conf}"
            base = key.replace("-fast", "")
            ref = ISSUE_REFERENCE.get(key) or ISSUE_REFERENCE.get(f"optimum+gptqmodel {base}") or \
                ISSUE_REFERENCE.get(f"llm-compressor {base}")
            ref_s = ISSUE_REFERENCE_S.get(base)
            label = key if seed == 0 else f"{key} (calib seed {seed})"
            rows.append({"model": label, "backend": name, "config": conf, "draw": seed, "ppl": res["ppl"], "quant_s": q_s, "eval_s": time.perf_counter() - t0,
                         "file_MB": size / 2**20, "file_ratio": size / fp32_bytes, "reference_ppl": ref,
                         "reference_s": ref_s, "time_ratio": q_s / ref_s if ref_s else None})
            print(f"{label}: ppl {res['ppl']:.3f} in {q_s:.0f} s", flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report("quant", f"SmolLM2-135M: {a.samples}x{a.seqlen} calibration tokens, {a.tokens} evaluation tokens",
           ["model", "ppl", "reference_ppl", "quant_s", "reference_s", "time_ratio", "eval_s", "file_MB",
            "file_ratio"], rows,
           {"spread": _spread(rows), "protocol": {"samples": a.samples, "seqlen": a.seqlen, "eval_tokens": a.tokens,
                         "text": "pydoc_data.topics (sorted keys, blank-line joined)"},
            "anchor": "optimum+gptqmodel not installed (needs CUDA); reference_ppl = the issue's figures, other protocol",
            "issue_reference": ISSUE_REFERENCE, "issue_reference_s": ISSUE_REFERENCE_S},
           seeds={"calibration_draws": [0, *spread_seeds]})


def _spread(rows: list[dict]) -> list[dict]:
    """Perplexity and time over calibration draws, per backend and configuration run on more than one draw."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if "draw" in r:
            groups.setdefault((r["backend"], r["config"]), []).append(r)
    return [{"backend": b, "config": c, "draws": [r["draw"] for r in rs], "ppl": spread([r["ppl"] for r in rs]),
             "quant_s": spread([r["quant_s"] for r in rs])} for (b, c), rs in groups.items() if len(rs) > 1]


if __name__ == "__main__":
    main()
