"""GeoQuant (issue #7): MD time, MD vs loss (experiment a), planted secrets and the MD constraint (b, c).

    python benchmarks/geoquant.py [--parts md_time,md_vs_loss,privacy] [--samples 16]

- md_time: MD of a 4096 x 4096 layer (Gaussian rows, RTN w4 g128) on this CPU; goal < 10 s.
- md_vs_loss: SmolLM2-135M, the linear layers of blocks 0, 7, 14, 21, 29, each quantized alone
  (RTN g128, 3 and 4 bits); Spearman / Pearson of MD vs the loss change and R^2 of MD, weight
  error, a Riemannian (Fisher-metric) and a geodesic (row angle) proxy. PNG + JSON.
- privacy: 16 patient ids planted in SmolLM2 by a short CPU fine-tune; functional rows (Fisher
  dPPL) and sensitive rows (encoding entropy >= 8 bits or MIA dAUC >= 0.1, measured on the
  `--candidates` rows a Fisher screen ranks highest) classified; then plain GPTQ and
  MD-constrained GPTQ (same calibration): perplexity, extraction rate, exposure, MIA AUC
  (members vs 3 fresh-id twins each), wall time (the overhead ratio is the constraint's cost).
  That run is also the ablation (c). Among the measured rows: Pearson of pre-quantization MD
  with dAUC and with encoding bits (the seed's claim: Pearson(MD, MIA) >= 0.65).
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
from _common import RESULTS, report  # noqa: E402


PARTS = ("md_time", "md_vs_loss", "privacy")


def md_time() -> list[dict[str, Any]]:
    """Time MD on one 4096 x 4096 layer, next to the RTN quantization of the same layer."""
    import torch

    from mdq_geoquant.md import md_rows
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.quant import dequantize, rtn

    g = torch.Generator().manual_seed(0)
    w = torch.randn(4096, 4096, generator=g) * 0.02
    cfg = QuantConfig(4, 128)
    t0 = time.perf_counter()
    wq = dequantize(*rtn(w, cfg), cfg)
    t_rtn = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = md_rows(w, wq)
    t_md = time.perf_counter() - t0
    return [{"part": "md_time", "what": "MD, 4096x4096, block 256, k 15", "seconds": t_md, "goal_s": 10.0,
             "rtn_seconds": t_rtn, "md_mean": float(res.md.mean()), "threads": torch.get_num_threads()}]


def md_vs_loss_part() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Experiment (a) on SmolLM2-135M and on the MiniLM encoder."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mdq_geoquant.report import encoder_batch, md_vs_loss, minilm_dir, plot
    from mdq_quantkit.data import corpus_text, split_tokens, tokenize
    from mdq_quantkit.layerwise import blocks_of, linears_of
    from mdq_quantkit.models import load

    out = RESULTS / "geoquant"
    rows, results = [], {}
    model, tok = load("smollm2-135m")
    prefix, bl = blocks_of(model)
    layers = [f"{prefix}.{i}.{n}" for i in (0, 7, 14, 21, 29) for n in linears_of(bl[i])]
    _, ev = split_tokens(tokenize(tok, corpus_text()))
    t0 = time.perf_counter()
    results["smollm2"] = md_vs_loss(model, ev[:1024].reshape(2, 512), layers, (3, 4))
    times = {"smollm2": time.perf_counter() - t0}
    d = minilm_dir()
    enc = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    ids, mask = encoder_batch(AutoTokenizer.from_pretrained(d), corpus_text())
    layers = [n for n, m in enc.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("encoder.")]
    t0 = time.perf_counter()
    results["minilm"] = md_vs_loss(enc, ids, layers, (3, 4), mask=mask)
    times["minilm"] = time.perf_counter() - t0
    for key, title in (("smollm2", "SmolLM2-135M (NLL)"), ("minilm", "MiniLM-L6 encoder (1 - cos of embeddings)")):
        res = results[key]
        plot(res, out / f"md_vs_loss_{key}.png", f"{title}: loss change vs predictors, one layer at a time")
        s = res["stats"]
        rows.append({"part": "md_vs_loss", "what": f"{title}, {len(res['rows'])} (layer, bits) points",
                     "seconds": times[key], "spearman_md": s["spearman_md"], "pearson_md": s["pearson_md"],
                     **{f"r2_{k}": v for k, v in s["r2"].items()}})
    return rows, results


def privacy(samples: int, candidates: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Experiments (b) and (c): planted secrets, plain GPTQ vs MD-constrained GPTQ."""
    import copy

    import torch

    from mdq_geoquant.classify import FunctionalClassifier, SensitiveClassifier, resolve
    from mdq_geoquant.constrained import MDConstrained, param
    from mdq_geoquant.md import md_rows
    from mdq_geoquant.privacy import extraction_rate, make_secrets, mean_exposure, plant
    from mdq_geoquant.probe import MembershipProbe
    from mdq_geoquant.report import pearson, spearman
    from mdq_gptq.gptq import GPTQ
    from mdq_quantkit.backends import quantize_model
    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.data import calibration_samples, corpus_text, perplexity, split_tokens, tokenize
    from mdq_quantkit.layerwise import blocks_of, linears_of
    from mdq_quantkit.models import load

    torch.manual_seed(0)
    model, tok = load("smollm2-135m")
    pool, ev = split_tokens(tokenize(tok, corpus_text()))
    secrets = make_secrets(16)
    general = torch.stack(calibration_samples(pool, 60, 128, seed=7)).squeeze(1)
    t0 = time.perf_counter()
    losses = plant(model, tok, secrets, general, steps=60)
    t_plant = time.perf_counter() - t0
    calib = calibration_samples(pool, samples, 512)
    prefix, bl = blocks_of(model)
    layers = {f"{prefix}.{i}.{n}": m for i, b in enumerate(bl) for n, m in linears_of(b).items()}

    probe = MembershipProbe.from_secrets(tok, secrets, twins=3)

    def measure(m: Any) -> dict[str, float]:
        return {"ppl": perplexity(m, ev, seqlen=512, tokens=4096)["ppl"], "extraction": extraction_rate(m, tok, secrets),
                "exposure": mean_exposure(m, tok, secrets), "mia_auc": probe.auc(probe.code_lengths(m))}

    rows = [{"part": "privacy", "model": "fine-tuned fp32", **measure(model), "seconds": t_plant}]
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
        rows.append({"part": "privacy", "model": f"{name} w4g128", **measure(m), "seconds": q_s})
        if name == "md-gptq":
            rows[-1]["layers_constrained"] = sum(1 for v in st["layers"].values() if "functional_rows" in v
                                                 or "sensitive_rows" in v)
    from mdq_geoquant.report import plot_privacy

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
    extra = {"plant_losses": losses, "classify_seconds": t_classify, "outlier_counts": outl.counts(),
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


def main() -> None:
    """Run the selected parts and write results/geoquant.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default=",".join(PARTS),
                    help="comma-separated; a partial run keeps the other parts' results in the JSON")
    ap.add_argument("--samples", type=int, default=16, help="GPTQ calibration windows of 512 tokens (privacy part)")
    ap.add_argument("--candidates", type=int, default=256,
                    help="rows the sensitive classifier measures (the Fisher screen's top ones)")
    a = ap.parse_args()
    parts = a.parts.split(",")
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    previous = RESULTS / "geoquant.json"
    if previous.exists() and set(parts) != set(PARTS):
        # a partial run keeps the other parts' results from the last run (each row says its part)
        old = json.loads(previous.read_text())
        rows = [r for r in old["rows"] if r.get("part") not in parts]
        extra = {k: old[k] for k in PARTS if k in old and k not in parts}
    if "md_time" in parts:
        rows += md_time()
    if "md_vs_loss" in parts:
        r, res = md_vs_loss_part()
        rows += r
        extra["md_vs_loss"] = res
    if "privacy" in parts:
        r, ex = privacy(a.samples, a.candidates)
        rows += r
        extra["privacy"] = ex
    report("geoquant", "GeoQuant: MD time, MD vs loss, planted secrets under GPTQ and MD-constrained GPTQ",
           ["part", "what", "model", "seconds", "goal_s", "spearman_md", "pearson_md", "r2_md", "r2_weight_err",
            "r2_riemannian", "r2_geodesic", "ppl", "extraction", "exposure", "mia_auc"], rows, extra)


if __name__ == "__main__":
    main()
