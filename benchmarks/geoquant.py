"""GeoQuant (issues #7, #20): MD time, MD vs loss (experiment a), classification time, planted secrets (b, c).

    python benchmarks/geoquant.py [--parts md_time,md_vs_loss,classify_time,privacy] [--seeds 0-4] [--quick]

- md_time: MD of a 4096 x 4096 layer (Gaussian rows, RTN w4 g128) on this CPU; goal < 10 s.
- md_vs_loss: SmolLM2-135M, the linear layers of blocks 0, 7, 14, 21, 29, each quantized alone
  (RTN g128, 3 and 4 bits), and every encoder layer of MiniLM; Spearman / Pearson of MD vs the
  loss change and R^2 of MD, weight error, a Riemannian (Fisher-metric) and a geodesic (row
  angle) proxy, each with a 95% bootstrap interval over the points. Once per seed: the seed
  draws the evaluation windows (SmolLM2) or the paragraphs (MiniLM). Spread over seeds.
- classify_time: the functional and sensitive classifiers on SmolLM2 (16 planted-format records,
  3 twins each), the sensitive probe re-running only the blocks from the changed one onward for
  each of `--classify-candidates` (rows measured; 128 is the classifier's default), and once with
  one full forward per measured row (the reference path) for the largest count; the scores must
  agree. Goal: classification < 5 minutes.
- privacy: per seed, 16 patient ids (drawn by the seed) planted in SmolLM2 by a short CPU
  fine-tune; functional rows (Fisher dPPL) and sensitive rows (encoding entropy >= 8 bits or
  MIA dAUC >= 0.1, measured on the `--candidates` rows a Fisher screen ranks highest)
  classified; then plain GPTQ and MD-constrained GPTQ (same calibration draw): perplexity,
  extraction rate, exposure, MIA AUC (members vs 3 fresh-id twins each), wall time (the
  overhead ratio is the constraint's cost). That run is also the ablation (c). Among the
  measured rows: Pearson of pre-quantization MD with dAUC and with encoding bits.
Writes results/geoquant.json and results/geoquant/*.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, parse_seeds, report, spread  # noqa: E402


PARTS = ("md_time", "md_vs_loss", "classify_time", "privacy")
STATS = ("spearman_md", "pearson_md", "r2_md", "r2_weight_err", "r2_riemannian", "r2_geodesic")


def md_time(size: int = 4096) -> list[dict[str, Any]]:
    """Time MD on one size x size layer, next to the RTN quantization of the same layer."""
    import torch

    from mdq_geoquant.md import md_rows
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.quant import dequantize, rtn

    g = torch.Generator().manual_seed(0)
    w = torch.randn(size, size, generator=g) * 0.02
    cfg = QuantConfig(4, 128)
    t0 = time.perf_counter()
    wq = dequantize(*rtn(w, cfg), cfg)
    t_rtn = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = md_rows(w, wq)
    t_md = time.perf_counter() - t0
    return [{"part": "md_time", "what": f"MD, {size}x{size}, block 256, k 15", "seconds": t_md, "goal_s": 10.0,
             "rtn_seconds": t_rtn, "md_mean": float(res.md.mean()), "threads": torch.get_num_threads()}]


def _flat(stats: dict[str, Any]) -> dict[str, float]:
    return {"spearman_md": stats["spearman_md"], "pearson_md": stats["pearson_md"],
            **{f"r2_{k}": v for k, v in stats["r2"].items()}}


def md_vs_loss_part(seeds: list[int], quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Experiment (a) on SmolLM2-135M and on the MiniLM encoder, once per seed (evaluation windows / paragraphs)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mdq_geoquant.report import encoder_batch, md_vs_loss, minilm_dir, plot
    from mdq_quantkit.data import calibration_samples, corpus_text, split_tokens, tokenize
    from mdq_quantkit.layerwise import blocks_of, linears_of
    from mdq_quantkit.models import load

    out = RESULTS / "geoquant"
    bits = (4,) if quick else (3, 4)
    model, tok = load("smollm2-135m")
    prefix, bl = blocks_of(model)
    layers = [f"{prefix}.{i}.{n}" for i in ((0,) if quick else (0, 7, 14, 21, 29)) for n in linears_of(bl[i])]
    _, ev = split_tokens(tokenize(tok, corpus_text()))
    d = minilm_dir()
    enc = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    enc_tok = AutoTokenizer.from_pretrained(d)
    enc_layers = [n for n, m in enc.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("encoder.")]
    enc_layers = enc_layers[:6] if quick else enc_layers
    seqlen = 128 if quick else 512
    results: dict[str, Any] = {"smollm2": {"seeds": seeds, "per_seed": []}, "minilm": {"seeds": seeds, "per_seed": []}}
    for seed in seeds:
        windows = torch.cat(calibration_samples(ev, 2, seqlen, seed=seed))  # (2, seqlen), drawn by the seed
        t0 = time.perf_counter()
        res = md_vs_loss(model, windows, layers, bits)
        results["smollm2"]["per_seed"].append({"seed": seed, "seconds": time.perf_counter() - t0, **res})
        ids, mask = encoder_batch(enc_tok, corpus_text(), seed=seed)
        t0 = time.perf_counter()
        res = md_vs_loss(enc, ids, enc_layers, bits, mask=mask)
        results["minilm"]["per_seed"].append({"seed": seed, "seconds": time.perf_counter() - t0, **res})
        print(f"md_vs_loss seed {seed}: Spearman(MD) SmolLM2 "
              f"{results['smollm2']['per_seed'][-1]['stats']['spearman_md']:.3f}, MiniLM {res['stats']['spearman_md']:.3f}",
              flush=True)
    rows = []
    for key, title in (("smollm2", "SmolLM2-135M (NLL)"), ("minilm", "MiniLM-L6 encoder (1 - cos of embeddings)")):
        runs = results[key]["per_seed"]
        plot(runs[0], out / f"md_vs_loss_{key}.png", f"{title}: loss change vs predictors, one layer at a time "
             f"(seed {runs[0]['seed']})")
        flat = [_flat(r["stats"]) for r in runs]
        summary = {k: spread([f[k] for f in flat]) for k in STATS}
        results[key]["summary"] = summary
        # the widest 95% bootstrap interval over the seeds (each seed's interval is in per_seed)
        cis = [r["stats"]["ci95"] for r in runs]
        hull = {"spearman_md": _hull([c["spearman_md"] for c in cis]), "pearson_md": _hull([c["pearson_md"] for c in cis]),
                **{f"r2_{p}": _hull([c["r2"][p] for c in cis]) for p in cis[0]["r2"]}}
        results[key]["ci95_hull"] = hull
        rows.append({"part": "md_vs_loss", "what": f"{title}, {len(runs[0]['rows'])} (layer, bits) points, "
                     f"{len(runs)} seeds", "seconds": sum(r["seconds"] for r in runs),
                     **{k: summary[k]["mean"] for k in STATS}, "spearman_md_sd": summary["spearman_md"]["sd"],
                     "spearman_md_min": summary["spearman_md"]["min"], "spearman_md_max": summary["spearman_md"]["max"],
                     "spearman_md_ci95": hull["spearman_md"]})
    return rows, results


def _hull(intervals: list[list[float] | None]) -> list[float] | None:
    defined = [c for c in intervals if c is not None]
    return [min(c[0] for c in defined), max(c[1] for c in defined)] if defined else None


def _setup(seed: int, quick: bool) -> dict[str, Any]:
    """Load SmolLM2 and build what the classifiers need: records drawn by the seed, the probe, the layers."""
    from mdq_geoquant.privacy import make_secrets
    from mdq_geoquant.probe import MembershipProbe
    from mdq_quantkit.data import calibration_samples, corpus_text, split_tokens, tokenize
    from mdq_quantkit.layerwise import blocks_of, linears_of
    from mdq_quantkit.models import load

    model, tok = load("smollm2-135m")
    pool, ev = split_tokens(tokenize(tok, corpus_text()))
    secrets = make_secrets(16, seed=seed)
    prefix, bl = blocks_of(model)
    layers = {f"{prefix}.{i}.{n}": m for i, b in enumerate(bl) for n, m in linears_of(b).items()}
    return {"model": model, "tok": tok, "pool": pool, "ev": ev, "secrets": secrets, "layers": layers,
            "probe": MembershipProbe.from_secrets(tok, secrets, twins=3),
            "calib": calibration_samples(pool, 2 if quick else 16, 128 if quick else 512, seed=seed)}


def classify_time(counts: list[int], quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Time the classifiers on SmolLM2: the sensitive probe by block reuse for each candidate count, and by full
    forwards (the reference) for the largest; every count's scores must agree with the reference on its rows."""
    import torch

    from mdq_geoquant.classify import FunctionalClassifier, SensitiveClassifier
    from mdq_geoquant.constrained import param
    from mdq_quantkit.data import perplexity

    s = _setup(0, quick)
    model, layers = s["model"], s["layers"]
    ppl = perplexity(model, s["ev"], seqlen=512, tokens=512 if quick else 4096)["ppl"]
    t0 = time.perf_counter()
    FunctionalClassifier(threshold=param(None, "dppl")).scores(model, s["calib"][:4], layers, ppl)
    t_func = time.perf_counter() - t0

    def sensitive(count: int, reuse: bool) -> tuple[Any, float]:
        clf = SensitiveClassifier(threshold=param(None, "entropy_bits"), dauc=param(None, "mia_dauc"),
                                  candidates=count, reuse_blocks=reuse)
        t0 = time.perf_counter()
        out = clf.scores(model, s["probe"], layers)
        took = time.perf_counter() - t0
        print(f"sensitive classifier, {count} rows, {out.path}: {took:.0f} s", flush=True)
        return out, took

    def flagged(scores: Any) -> dict[str, Any]:
        return {n: scores.s_priv[n] >= 1 for n in layers}

    top = max(counts)
    ref, t_ref = sensitive(top, False)
    ref_flag = flagged(ref)
    rows = [{"part": "classify_time", "what": f"functional + sensitive ({top} rows measured), full forward per row "
             "(reference)", "candidates": top, "seconds": t_func + t_ref, "sensitive_s": t_ref,
             "functional_s": t_func, "goal_s": 300.0, "ratio": 1.0}]
    checks = {}
    for count in sorted(counts):
        new, t = sensitive(count, True)
        # the same Fisher screen ranks the rows, so a smaller count measures a subset of the reference's rows
        subset = all(bool((new.measured[n] <= ref.measured[n]).all()) for n in layers)
        m, new_flag = new.measured, flagged(new)
        diff = max((float((ref.encoding_bits[n] - new.encoding_bits[n])[m[n]].abs().max()) for n in layers
                    if m[n].any()), default=0.0)
        ddauc = max((float((ref.dauc[n] - new.dauc[n])[m[n]].abs().max()) for n in layers if m[n].any()), default=0.0)
        # the fast path may differ from the reference in float32 summation order; whether any row changes class is recorded
        same = subset and all(torch.equal(ref_flag[n][m[n]], new_flag[n][m[n]]) for n in layers)
        # what measuring fewer rows costs: rows the reference found sensitive that this count never measured
        missed = sum(int((ref_flag[n] & ~m[n]).sum()) for n in layers)
        checks[str(count)] = {"max_abs_diff_encoding_bits": diff, "max_abs_diff_dauc": ddauc, "subset_of_reference":
                              subset, "same_sensitive_rows": same, "missed_sensitive_rows": missed,
                              "sensitive_rows": sum(int(f.sum()) for f in new_flag.values()),
                              "path": new.path, "sensitive_s": t, "seconds": t_func + t, "met": t_func + t < 300.0}
        rows.append({"part": "classify_time", "what": f"functional + sensitive ({count} rows measured), {new.path}",
                     "candidates": count, "seconds": t_func + t, "sensitive_s": t, "functional_s": t_func,
                     "goal_s": 300.0, "ratio": t / t_ref if count == top else None})
    return rows, {"candidates": counts, "reference": {"candidates": top, "path": ref.path, "sensitive_s": t_ref,
                                                      "sensitive_rows": sum(int(f.sum()) for f in ref_flag.values())},
                  "per_count": checks, "functional_s": t_func,
                  "speedup_sensitive": t_ref / checks[str(top)]["sensitive_s"]}


def privacy(seed: int, samples: int, candidates: int, quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Experiments (b) and (c) for one seed: planted secrets, plain GPTQ vs MD-constrained GPTQ."""
    import copy

    import torch

    from mdq_geoquant.classify import FunctionalClassifier, SensitiveClassifier, resolve
    from mdq_geoquant.constrained import MDConstrained, param
    from mdq_geoquant.md import md_rows
    from mdq_geoquant.privacy import extraction_rate, mean_exposure, plant
    from mdq_geoquant.report import pearson, spearman
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.backends import quantize_model
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.data import calibration_samples, perplexity

    torch.manual_seed(seed)
    s = _setup(seed, quick)
    model, tok, pool, ev, secrets, layers = (s[k] for k in ("model", "tok", "pool", "ev", "secrets", "layers"))
    general = torch.stack(calibration_samples(pool, 60, 128, seed=7 + seed)).squeeze(1)
    t0 = time.perf_counter()
    losses = plant(model, tok, secrets, general, steps=2 if quick else 60, seed=seed)
    t_plant = time.perf_counter() - t0
    calib = s["calib"][:samples]
    probe = s["probe"]

    def measure(m: Any) -> dict[str, float]:
        return {"ppl": perplexity(m, ev, seqlen=512, tokens=512 if quick else 4096)["ppl"],
                "extraction": extraction_rate(m, tok, secrets),
                "exposure": mean_exposure(m, tok, secrets), "mia_auc": probe.auc(probe.code_lengths(m))}

    rows = [{"part": "privacy", "seed": seed, "model": "fine-tuned fp32", **measure(model), "seconds": t_plant}]
    base_ppl = rows[0]["ppl"]
    t0 = time.perf_counter()
    s_func = FunctionalClassifier(threshold=param(None, "dppl")).scores(model, calib[:4], layers, base_ppl)
    sens = SensitiveClassifier(threshold=param(None, "entropy_bits"), dauc=param(None, "mia_dauc"),
                               candidates=candidates).scores(model, probe, layers)
    outl = resolve(s_func, sens.s_priv, param(None, "dppl"), 1.0, param(None, "lambda_priv"))
    t_classify = time.perf_counter() - t0
    cfg = QuantConfig(4, 128)
    variants: dict[str, Any] = {}
    for name in ("gptq", "md-gptq"):
        m = copy.deepcopy(model)
        backend = GPTQ() if name == "gptq" else MDConstrained(GPTQ(), m, outl)
        t0 = time.perf_counter()
        st = quantize_model(m, cfg, backend, calib)
        q_s = time.perf_counter() - t0
        variants[name] = m
        rows.append({"part": "privacy", "seed": seed, "model": f"{name} w4g128", **measure(m), "seconds": q_s})
        if name == "md-gptq":
            rows[-1]["layers_constrained"] = sum(1 for v in st["layers"].values() if "functional_rows" in v
                                                 or "sensitive_rows" in v)
    from mdq_geoquant.report import plot_privacy

    if seed == 0 or quick:
        plot_privacy(rows, RESULTS / "geoquant" / "privacy.png")
    overhead = rows[2]["seconds"] / rows[1]["seconds"]
    md_by = {}
    for cls in ("functional", "sensitive"):
        for variant, m in variants.items():
            vals = []
            for n, rws in getattr(outl, cls).items():
                if rws.numel():
                    w = layers[n].weight.detach().float()
                    vals.append(md_rows(w, m.get_submodule(n).dequantized(), rows=rws, what=n).md)
            md_by[f"{cls} rows, {variant}"] = float(torch.cat(vals).mean()) if vals else None
    extra = {"seed": seed, "plant_losses": losses, "classify_seconds": t_classify, "outlier_counts": outl.counts(),
             "sensitive_criteria": _criteria(sens, layers, param(None, "entropy_bits"), param(None, "mia_dauc"),
                                             pearson, spearman),
             "md_of_outlier_rows": md_by, "md_gptq_time_overhead": overhead,
             "thresholds": {k: param(None, k) for k in ("tau_func", "tau_priv", "dppl", "entropy_bits", "mia_dauc",
                                                           "lambda_priv")}}
    return rows, extra


def _criteria(sens: Any, layers: dict[str, Any], bits_t: float, dauc_t: float, pearson: Any,
              spearman: Any) -> dict[str, Any]:
    """Summarize the sensitive classifier's measured rows, and how MD (RTN w4 g128) relates to them."""
    import torch

    from mdq_geoquant.classify import rtn_weight
    from mdq_geoquant.md import md_rows

    md, bits, dauc, screen = [], [], [], []
    for n, m in layers.items():
        rows = sens.measured[n].nonzero().flatten()
        if rows.numel():
            w = m.weight.detach().float()
            md += md_rows(w, rtn_weight(w, 4, 128), rows=rows, what=n).md.tolist()
            bits += sens.encoding_bits[n][rows].tolist()
            dauc += sens.dauc[n][rows].tolist()
            screen += sens.screen[n][rows].tolist()
    import math

    t = torch.tensor

    def num(x: float) -> float | None:
        return None if math.isnan(x) else x  # a constant side (e.g. every dAUC 0) has no correlation

    return {"measured_rows": len(md), "max_encoding_bits": max(bits, default=None), "max_dauc": max(dauc, default=None),
            "median_encoding_bits": float(t(bits).median()) if bits else None,
            "rows_over_bits": int((t(bits) >= bits_t).sum()) if bits else 0,
            "rows_over_dauc": int((t(dauc) >= dauc_t).sum()) if dauc else 0,
            "spearman_screen_vs_bits": num(spearman(screen, bits)), "pearson_md_vs_dauc": num(pearson(md, dauc)),
            "pearson_md_vs_bits": num(pearson(md, bits))}


def privacy_over_seeds(seeds: list[int], samples: int, candidates: int,
                       quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run the privacy experiment once per seed; add per-model spread rows."""
    rows, runs = [], []
    for seed in seeds:
        r, ex = privacy(seed, samples, candidates, quick)
        rows += r
        runs.append(ex)
        print(f"privacy seed {seed}: outliers {ex['outlier_counts']}, classify {ex['classify_seconds']:.0f} s", flush=True)
    summary = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        summary[model] = {k: spread([r[k] for r in rs]) for k in ("ppl", "extraction", "exposure", "mia_auc", "seconds")}
    summary["md_gptq_time_overhead"] = spread([ex["md_gptq_time_overhead"] for ex in runs])
    summary["classify_seconds"] = spread([ex["classify_seconds"] for ex in runs])
    summary["outlier_rows"] = {c: spread([ex["outlier_counts"][c] for ex in runs]) for c in ("functional", "sensitive")}
    return rows, {"seeds": seeds, "per_seed": runs, "summary": summary}


def main() -> None:
    """Run the selected parts and write results/geoquant.json (a partial run keeps the other parts, with their provenance)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated; a partial run keeps the other parts' results in the JSON")
    ap.add_argument("--seeds", default="0-4", help="seeds of md_vs_loss and privacy, e.g. 0-4 or 0,2")
    ap.add_argument("--samples", type=int, default=16, help="GPTQ calibration windows of 512 tokens (privacy part)")
    ap.add_argument("--candidates", type=int, default=256,
                    help="rows the sensitive classifier measures (the Fisher screen's top ones), privacy part")
    ap.add_argument("--classify-candidates", default="128,256",
                    help="candidate counts the classify_time part times (128 is the classifier's default)")
    ap.add_argument("--quick", action="store_true", help="a smoke run of every part (small sizes, 2 seeds)")
    a = ap.parse_args()
    parts = a.parts.split(",")
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}; parts: {', '.join(PARTS)}")
    try:
        seeds = parse_seeds("0-1" if a.quick else a.seeds)
    except ValueError as exc:
        ap.error(f"--seeds: {exc}")
    candidates = 4 if a.quick else a.candidates
    try:
        counts = sorted({int(c) for c in a.classify_candidates.split(",")})
    except ValueError:
        ap.error(f"--classify-candidates: comma-separated whole numbers, got {a.classify_candidates!r}")
    if not counts or counts[0] < 1:
        ap.error(f"--classify-candidates: every count must be >= 1, got {a.classify_candidates!r}")
    samples = 2 if a.quick else a.samples
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {"provenance": {}}
    previous = RESULTS / "geoquant.json"
    if previous.exists() and set(parts) != set(PARTS):
        # a partial run keeps the other parts' results from the last run (each row says its part), and says where from
        old = json.loads(previous.read_text())
        rows = [r for r in old["rows"] if r.get("part") not in parts]
        extra = {k: old[k] for k in PARTS if k in old and k not in parts}
        extra["provenance"] = {k: v for k, v in old.get("provenance", {}).items() if k not in parts}
        for k in PARTS:
            if k not in parts and k not in extra["provenance"] and any(r.get("part") == k for r in rows):
                extra["provenance"][k] = {"kept": "from a run that recorded no environment",
                                          "last_committed": _last_commit(previous)}
    if "md_time" in parts:
        rows += md_time(1024 if a.quick else 4096)
    if "md_vs_loss" in parts:
        r, res = md_vs_loss_part(seeds, a.quick)
        rows += r
        extra["md_vs_loss"] = res
    if "classify_time" in parts:
        r, res = classify_time([4] if a.quick else counts, a.quick)
        rows += r
        extra["classify_time"] = res
    if "privacy" in parts:
        r, ex = privacy_over_seeds(seeds, samples, candidates, a.quick)
        rows += r
        extra["privacy"] = ex
    from _common import environment

    for k in parts:
        extra["provenance"][k] = environment(seeds if k in ("md_vs_loss", "privacy") else None)
    report("geoquant", "GeoQuant: MD time, MD vs loss, classification time, planted secrets under GPTQ and "
           "MD-constrained GPTQ", ["part", "what", "model", "seed", "seconds", "goal_s", "spearman_md", "pearson_md",
                                   "r2_md", "r2_weight_err", "r2_riemannian", "r2_geodesic", "ppl", "extraction",
                                   "exposure", "mia_auc"], rows, extra, seeds=seeds)


def _last_commit(path: Path) -> str:
    import subprocess

    return subprocess.run(["git", "-C", str(path.parent), "log", "-1", "--format=%H %cs", "--", str(path)],
                          capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
