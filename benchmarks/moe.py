"""CDSP-MoE (issues #8, #20), each figure beside its anchor in one run.

  block-sparse    SparseCDSP (gathered k columns per expert, top-1 routing) vs the dense masked
                  layer, E=4, 4096 rows, k/N = 1/4, 1/8, 1/16, at d x N = 256 x 1024 and 512 x 2048
                  goal: time ratio within 1.5x of the FLOP ratio k/N
  training step   forward + backward of one CDSP-MoE layer vs a standard top-1 MoE whose experts
                  have hidden width k (equal active parameters per token: 2*d*k)
  interference    the digits experiment (mdq moe interference) over seeds, at 1 and 2 torch
                  threads, with the training recipe of `train`'s defaults (cosine learning rate,
                  masks frozen for the last quarter) and with the original one (constant rate,
                  masks never frozen), which is the one that failed: per-task accuracy of
                  CDSP-MoE, a plain MLP without / with the task id, and a top-1 MoE, as mean, sd,
                  min, max over seeds and the count of runs below 0.95; figures in results/moe/

    python benchmarks/moe.py [--epochs 40] [--seeds 0-9] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from _common import RESULTS, parse_seeds, report
from mdq_cdsp_moe import CDSPConfig, CDSPMoE, SparseCDSP
from mdq_cdsp_moe.experiment import GOAL, TopKMoELayer, plot, run_seeds
from mdq_cdsp_moe.sparse import dense_reference


def _time(fn, reps: int = 20) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def sparse_rows() -> list[dict]:
    torch.manual_seed(0)
    rows = []
    for d, N in ((256, 1024), (512, 2048)):
        rows += _sparse_size(d, N)
    return rows


def _sparse_size(d: int, N: int) -> list[dict]:
    rows = []
    x, task = torch.randn(4096, d), torch.randint(0, 2, (4096,))
    for div in (4, 8, 16):
        layer = CDSPMoE(CDSPConfig(d, N, 4, N // div, n_tasks=2))
        with torch.no_grad():
            layer.alpha.normal_()
        sp = SparseCDSP(layer)
        assert torch.allclose(sp(x, task), dense_reference(layer, x, task), atol=1e-4)
        td = _time(lambda: dense_reference(layer, x, task))
        ts = _time(lambda: sp(x, task))
        rows.append({"d x N": f"{d} x {N}", "k/N": f"1/{div}", "dense_ms": td * 1e3, "sparse_ms": ts * 1e3, "time_ratio": ts / td,
                     "flop_ratio": 1 / div, "time_over_flop": (ts / td) * div, "goal": "<= 1.5"})
    return rows


def train_step_rows() -> list[dict]:
    torch.manual_seed(0)
    d, N, k, E, B = 256, 1024, 64, 4, 512
    x, task = torch.randn(B, d), torch.randint(0, 2, (B,))
    cdsp = CDSPMoE(CDSPConfig(d, N, E, k, n_tasks=2))
    topk = TopKMoELayer(d, k, E)

    def step(layer):
        layer.zero_grad()
        layer(x, task).pow(2).mean().backward()

    tc, tt = _time(lambda: step(cdsp)), _time(lambda: step(topk))
    return [{"model": "cdsp-moe (d=256, N=1024, k=64)", "active_params_per_token": 2 * d * k, "step_ms": tc * 1e3,
             "ratio_vs_topk": tc / tt},
            {"model": "top-1 MoE (expert hidden 64)", "active_params_per_token": 2 * d * k, "step_ms": tt * 1e3,
             "ratio_vs_topk": 1.0}]


RECIPES = {"default": {}, "original": {"schedule": "constant", "freeze_masks": 1.0}}


def interference(epochs: int, seeds: list[int], threads: list[int]) -> tuple[list[dict], dict]:
    """Run the interference test per recipe and thread count over the seeds; return summary rows and every run."""
    rows, runs = [], {}
    for recipe, options in RECIPES.items():
        for th in threads:
            torch.set_num_threads(th)
            t0 = time.perf_counter()
            res = run_seeds(epochs, seeds, **options)
            wall = time.perf_counter() - t0
            if recipe == "default" and th == threads[-1]:
                first = res["runs"][0]
                runs["figures"] = plot(first, RESULTS / "moe")
            for r in res["runs"]:
                r.pop("_model")
            runs[f"{recipe}, {th} thread(s)"] = res
            for name, s in res["summary"].items():
                rows.append({"recipe": recipe, "threads": th, "model": name,
                             "params": res["runs"][0]["models"][name]["params"],
                             **{f"{t}_{k}": s[t][k] for t in ("task0", "task1") for k in ("mean", "sd", "min", "max")},
                             "min_task_acc_min": s["min_task"]["min"], "runs_below_goal": s["below_goal"],
                             "runs": s["runs"], "seconds": wall,
                             "per_seed_min_task_acc": [r["models"][name]["min_task_acc"] for r in res["runs"]]})
            print(f"interference, {recipe} recipe, {th} thread(s): cdsp min over seeds "
                  f"{res['summary']['cdsp']['min_task']['min']:.3f}, {res['summary']['cdsp']['below_goal']} of "
                  f"{len(seeds)} below {GOAL}", flush=True)
    return rows, runs


def main() -> None:
    """Run the three parts and write results/moe_*.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--threads", default="1,2", help="torch thread counts the interference test runs at")
    a = ap.parse_args()
    try:
        seeds = parse_seeds(a.seeds)
        threads = parse_seeds(a.threads)
    except ValueError as exc:
        ap.error(str(exc))
    torch.set_num_threads(2)
    report("moe_sparse", "block-sparse vs dense inference (median of 20)",
           ["d x N", "k/N", "dense_ms", "sparse_ms", "time_ratio", "flop_ratio", "time_over_flop", "goal"], sparse_rows())
    report("moe_train_step", "training step, equal active parameters (median of 20)",
           ["model", "active_params_per_token", "step_ms", "ratio_vs_topk"], train_step_rows())
    rows, runs = interference(a.epochs, seeds, threads)
    (RESULTS / "moe").mkdir(parents=True, exist_ok=True)
    (RESULTS / "moe" / "interference.json").write_text(json.dumps(runs, indent=2))
    report("moe_interference", f"interference test, digits parity vs inverse parity ({a.epochs} epochs, seeds "
           f"{a.seeds}): test accuracy over seeds", ["recipe", "threads", "model", "params", "task0_mean", "task0_sd",
                                                     "task0_min", "task1_mean", "task1_sd", "task1_min",
                                                     "runs_below_goal", "runs"], rows,
           {"goal": f"cdsp >= {GOAL} on both tasks, on every seed", "figures": runs["figures"],
            "recipes": {k: v or "train() defaults" for k, v in RECIPES.items()}}, seeds=seeds)


if __name__ == "__main__":
    main()
