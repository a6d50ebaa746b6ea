"""Outlier rows kept in float16 (issue #20): which selector earns the budget, on SmolLM2-135M under GPTQ.

    python benchmarks/mixed_precision.py [--configs w3g128,w4g128] [--draws 0-2] [--keeps 0.5%,1%]
                                         [--scopes layer,model] [--selectors NAMES] [--out NAME]
                                         [--quick] [--resume] [--table]

For every configuration and calibration draw, GPTQ (act-order, true-sequential) quantizes the
model once while `mdq_geoquant.select.ScoreRecorder` scores every row of every layer with each
selector. Keeping rows does not change what GPTQ computes (they are written after the whole
model is quantized, exactly as `mdq quantize --outliers NAME --keep K` does), so the model is
quantized, saved and loaded back once, and each selector's rows are put into the loaded copy in
turn and evaluated there (protocol of mdq_quantkit.data, as benchmarks/quant.py); its file with
those rows is written to measure the size. Every selector gets the same
float16 budget: with scope "layer" the same number of rows in every layer (same file size), with
scope "model" the same number of weights over the whole model.

Selectors: random, weight-error, hessian (diagonal-Hessian saliency, as SpQR / OWQ), kfac (the
row's output error under the full input Hessian, weighted by the loss gradient of that output),
md (GeoQuant's MD alone), geoquant (Fisher loss change among the rows with MD over the layer
median), and fisher (the geoquant score with its MD gate off: what the gate adds). Time = GPTQ's
time plus the selector's own scoring (and, for kfac / geoquant / fisher, the loss gradients
measured on the float model).

columns (OWQ's weak input columns, `mdq quantize --keep-columns`) is not a row selector: the
columns are chosen before GPTQ and change what it computes (they absorb the other columns'
error), so each budget quantizes the model again. Its budget is per layer, rounded down (at most
the share in every layer, except one column where the share is under one), so it holds fewer
float16 weights than the row selectors at the budgets measured here.
`--selectors columns --out mixed_precision_columns` runs it alone against plain GPTQ on the same
draws (a results file of its own, keeping the row selectors' run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, environment, parse_seeds, report, spread  # noqa: E402

ROW_SELECTORS = ("random", "weight-error", "hessian", "kfac", "md", "geoquant", "fisher")
SELECTORS = (*ROW_SELECTORS, "columns")
GOAL = "w3g128, keep 1%: the best selector improves GPTQ's perplexity by >= 15%"


def _scorers(draw: int) -> list[Any]:
    from mdq_geoquant.select import GeoQuantScore, HessianScore, KFACScore, MDScore, RandomScore, WeightErrorScore

    fisher = GeoQuantScore(md_percentile=0)
    fisher.name = "fisher"
    return [RandomScore(seed=draw), WeightErrorScore(), HessianScore(), KFACScore(), MDScore(), GeoQuantScore(), fisher]


def run_one(conf: str, draw: int, a: argparse.Namespace, data: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """Quantize once for (conf, draw), then evaluate the plain model and every selector x keep x scope."""
    from mdq_geoquant.select import ScoreRecorder, sensitivities
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.backends import quantize_model
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.data import calibration_samples
    from mdq_quantkit.io import load_quantized, save_quantized
    from mdq_quantkit.models import load

    bits, group = (int(x) for x in conf[1:].split("g"))
    model, tok = load("smollm2-135m")
    calib = calibration_samples(data["pool"], a.samples, a.seqlen, seed=draw)
    scorers = [s for s in _scorers(draw) if s.name in a.selectors]
    t0 = time.perf_counter()
    needs_sens = any(s.needs & {"fisher", "out_grad"} for s in scorers)
    sens = sensitivities(model, calib[:a.fisher_samples]) if needs_sens else None
    sens_s = time.perf_counter() - t0
    rec = ScoreRecorder(GPTQ(), scorers, model, sens)
    t0 = time.perf_counter()
    quantize_model(model, QuantConfig(bits, group), rec, calib)
    total_s = time.perf_counter() - t0
    gptq_s = total_s - sum(rec.seconds.values())  # GPTQ (with the input-statistics hooks) without any scoring

    # evaluated as loaded: the model is saved and loaded back once, and each selector's rows are put into the
    # loaded copy (they are float16 there as in a file of their own, whose size is measured by writing it)
    loaded = load_quantized(save_quantized(model, tmp / "source", tok))

    def evaluate(label: str) -> dict[str, Any]:
        out = save_quantized(loaded, tmp / label, tok)
        size = _size(out)
        shutil.rmtree(out)
        return _measured(loaded, size, a, data)

    base = {"config": conf, "draw": draw, "selector": "none (GPTQ)", "keep": 0.0, "scope": "-", "kept_share": 0.0,
            "time_s": gptq_s, **evaluate("plain")}
    rows = [base]
    print(f"{conf} draw {draw}: GPTQ ppl {base['ppl']:.3f} in {gptq_s:.0f} s", flush=True)
    for keep in a.keeps:
        for scope in a.scopes:
            for s in scorers:
                kept = rec.apply(loaded, s.name, keep, scope)
                extra_s = rec.seconds[s.name] + (sens_s if s.needs & {"fisher", "out_grad"} else 0.0)
                r = {"config": conf, "draw": draw, "selector": s.name, "keep": keep, "scope": scope,
                     "kept_share": kept["kept_share"], "kept_rows": kept["kept_rows"],
                     "layers_with_kept_rows": kept["layers_with_kept_rows"], "time_s": gptq_s + extra_s,
                     "select_s": extra_s, **evaluate(f"{s.name}-{keep}-{scope}")}
                r["gain_vs_gptq"] = (base["ppl"] - r["ppl"]) / base["ppl"]
                rows.append(r)
                print(f"  {s.name:<12} keep {keep:.3%} {scope:<5}: ppl {r['ppl']:.3f} ({r['gain_vs_gptq']:+.1%})",
                      flush=True)
    if "columns" in a.selectors:
        rows += _columns(conf, QuantConfig(bits, group), draw, a, data, tmp, calib, base)
    return rows


def _size(out: Path) -> int:
    """Return the bytes of a saved checkpoint's tensor files."""
    return sum(f.stat().st_size for f in out.glob("*.safetensors"))


def _measured(model: Any, size: int, a: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """Return a row's perplexity (protocol of mdq_quantkit.data), evaluation time and file size for `model`."""
    from mdq_quantkit.data import perplexity

    t1 = time.perf_counter()
    ppl = perplexity(model, data["ev"], seqlen=a.seqlen_eval, tokens=a.tokens)["ppl"]
    return {"ppl": ppl, "file_MB": size / 2**20, "file_ratio": size / data["fp32_bytes"],
            "eval_s": time.perf_counter() - t1}


def _columns(conf: str, cfg: Any, draw: int, a: argparse.Namespace, data: dict[str, Any], tmp: Path,
             calib: list[Any], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Quantize again per budget with OWQ's weak columns kept (GPTQ keep_columns); evaluate as loaded."""
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.backends import quantize_model
    from mdq_quantkit.io import load_quantized, save_quantized
    from mdq_quantkit.models import load
    from mdq_quantkit.qlinear import QuantLinear

    rows = []
    for keep in a.keeps:
        model, tok = load("smollm2-135m")
        t0 = time.perf_counter()
        quantize_model(model, cfg, GPTQ(keep_columns=keep), calib)
        q_s = time.perf_counter() - t0
        out = save_quantized(model, tmp / f"columns-{keep}", tok)
        size = _size(out)
        loaded = load_quantized(out)
        shutil.rmtree(out)
        layers = [m for m in loaded.modules() if isinstance(m, QuantLinear)]
        kept = sum(int(m.keep_cols.numel()) * m.out_features for m in layers)
        total = sum(m.in_features * m.out_features for m in layers)
        r = {"config": conf, "draw": draw, "selector": "columns", "keep": keep, "scope": "layer",
             "kept_share": kept / total, "kept_columns": sum(int(m.keep_cols.numel()) for m in layers),
             "layers_with_kept_columns": sum(1 for m in layers if m.keep_cols.numel()), "time_s": q_s,
             "select_s": 0.0, **_measured(loaded, size, a, data)}
        r["gain_vs_gptq"] = (base["ppl"] - r["ppl"]) / base["ppl"]
        rows.append(r)
        print(f"  {'columns':<12} keep {keep:.3%} layer: ppl {r['ppl']:.3f} ({r['gain_vs_gptq']:+.1%}), "
              f"{r['kept_share']:.3%} of the weights, GPTQ {q_s:.0f} s", flush=True)
    return rows


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (config, selector, keep, scope): perplexity and gain over the draws (mean, sd, min, max), size, time."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["selector"], r["keep"], r["scope"]), []).append(r)
    out = []
    for (conf, sel, keep, scope), rs in groups.items():
        p = spread([r["ppl"] for r in rs])
        s = {"config": conf, "selector": sel, "keep": keep, "scope": scope, "draws": [r["draw"] for r in rs],
             "n_draws": len(rs),
             "ppl_mean": p["mean"], "ppl_sd": p["sd"], "ppl_min": p["min"], "ppl_max": p["max"],
             "file_MB": spread([r["file_MB"] for r in rs])["mean"], "time_s": spread([r["time_s"] for r in rs])["mean"]}
        if sel != "none (GPTQ)":
            g = spread([r["gain_vs_gptq"] for r in rs])
            s.update(gain_mean=g["mean"], gain_sd=g["sd"], gain_min=g["min"], gain_max=g["max"],
                     kept_share=spread([r["kept_share"] for r in rs])["mean"])
        out.append(s)
    return out


def goal(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goal, evaluated on the summary: best mean gain at w3g128, keep 1%, either scope."""
    cands = [s for s in summary if s["config"] == "w3g128" and abs(s["keep"] - 0.01) < 1e-12 and "gain_mean" in s]
    if not cands:
        return {"goal": GOAL, "measured": False}
    best = max(cands, key=lambda s: s["gain_mean"])
    return {"goal": GOAL, "measured": True, "best": {k: best[k] for k in ("selector", "scope", "gain_mean", "gain_min",
                                                                           "ppl_mean", "ppl_sd")},
            "met": best["gain_mean"] >= 0.15}


def markdown(doc: dict[str, Any]) -> str:
    """Return the README's table (selector x bits x budget x scope) from a results document."""
    summary = doc["rows"]
    lines = ["| bits | budget | scope | selector | ppl mean +- sd | min - max | gain vs GPTQ (mean, min) | file MB | "
             "time s | draws |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = {s: i for i, s in enumerate(("none (GPTQ)", *SELECTORS))}
    for s in sorted(summary, key=lambda s: (s["config"], s["keep"], s["scope"], order.get(s["selector"], 99))):
        gain = f"{s['gain_mean']:+.1%}, {s['gain_min']:+.1%}" if "gain_mean" in s else "-"
        lines.append(f"| {s['config']} | {s['keep']:.1%} | {s['scope']} | {s['selector']} | {s['ppl_mean']:.2f} +- "
                     f"{s['ppl_sd']:.2f} | {s['ppl_min']:.2f} - {s['ppl_max']:.2f} | {gain} | {s['file_MB']:.1f} | "
                     f"{s['time_s']:.0f} | {s['n_draws']} |")
    return "\n".join(lines)


def main() -> None:
    """Run the comparison and write results/NAME.json (--out, default mixed_precision)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="w3g128,w4g128")
    ap.add_argument("--draws", default="0-2", help="calibration draws (seeds of the calibration windows), e.g. 0-2")
    ap.add_argument("--keeps", default="0.5%,1%", help="float16 budgets, shares of the quantized weights")
    ap.add_argument("--scopes", default="model", help="layer, model or both")
    ap.add_argument("--selectors", default=",".join(ROW_SELECTORS),
                    help=f"comma-separated, among {', '.join(SELECTORS)} (columns only when named)")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=8192, help="evaluation tokens")
    ap.add_argument("--fisher-samples", type=int, default=8,
                    help="calibration windows for the loss gradients on the float model (Fisher, output gradients)")
    ap.add_argument("--out", default="mixed_precision", help="results/NAME.json to write")
    ap.add_argument("--quick", action="store_true", help="a smoke run: w4g128, one draw, small calibration and evaluation")
    ap.add_argument("--resume", action="store_true",
                    help="keep the (config, draw) runs an interrupted run saved in results/NAME.partial.json (--out)")
    ap.add_argument("--table", action="store_true", help="print the README table from results/NAME.json (--out) "
                    "and exit (runs nothing)")
    a = ap.parse_args()
    if a.table:
        print(markdown(json.loads((RESULTS / f"{a.out}.json").read_text())))
        return
    if a.quick:
        a.configs, a.draws, a.keeps, a.scopes = "w4g128", "0", "1%", "layer"
        a.samples, a.seqlen, a.tokens, a.fisher_samples = 4, 128, 1024, 2
    a.seqlen_eval = 512 if not a.quick else 128
    a.draws = parse_seeds(a.draws)
    a.keeps = [float(k.rstrip("%")) / 100 if k.endswith("%") else float(k) for k in a.keeps.split(",")]
    a.scopes = a.scopes.split(",")
    a.selectors = a.selectors.split(",")
    unknown = sorted(set(a.selectors) - set(SELECTORS))
    if unknown or not all(0 < k <= 0.5 for k in a.keeps) or not set(a.scopes) <= {"layer", "model"}:
        ap.error(f"selectors must be among {SELECTORS} (unknown: {unknown}), keeps in (0, 50%], scopes layer/model")

    import torch

    from mdq_quantkit.data import corpus_text, split_tokens, tokenize
    from mdq_quantkit.models import load, smollm2_dir

    torch.set_num_threads(max(1, torch.get_num_threads()))
    _, tok = load("smollm2-135m")
    pool, ev = split_tokens(tokenize(tok, corpus_text()))
    data = {"pool": pool, "ev": ev, "fp32_bytes": (smollm2_dir() / "model.safetensors").stat().st_size}
    rows: list[dict[str, Any]] = []
    partial = RESULTS / f"{a.out}.partial.json"  # every finished (config, draw), for --resume
    if a.resume and partial.exists():
        rows = json.loads(partial.read_text())["runs"]
        print(f"resuming: {len({(r['config'], r['draw']) for r in rows})} (config, draw) runs kept from {partial}")
    tmp = Path(tempfile.mkdtemp(prefix="mdq-mixed-"))
    try:
        for conf in a.configs.split(","):
            for draw in a.draws:
                if any(r["config"] == conf and r["draw"] == draw for r in rows):
                    continue
                rows += run_one(conf, draw, a, data, tmp)
                RESULTS.mkdir(parents=True, exist_ok=True)
                partial.write_text(json.dumps({"runs": rows, "environment": environment(a.draws)}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(rows)
    kept = "rows / columns" if "columns" in a.selectors else "rows"
    report(a.out, f"SmolLM2-135M, GPTQ + float16 {kept}: ppl over calibration draws {a.draws} "
           f"({a.samples}x{a.seqlen} calibration, {a.tokens} evaluation tokens)",
           ["config", "selector", "keep", "scope", "ppl_mean", "ppl_sd", "ppl_min", "ppl_max", "gain_mean", "gain_min",
            "kept_share", "file_MB", "time_s"], summary,
           {"runs": rows, "goal": goal(summary),
            "protocol": {"samples": a.samples, "seqlen": a.seqlen, "eval_tokens": a.tokens,
                         "fisher_samples": a.fisher_samples, "backend": "gptq (act-order, true-sequential)",
                         "text": "pydoc_data.topics (sorted keys, blank-line joined)"}},
           seeds={"calibration_draws": a.draws, "random_selector": "seed = draw"})
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
