"""Re-run every benchmark (or some) with one command; `--quick` gives a smoke run of each in minutes.

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--list]

Each benchmark is its script run in a fresh process (so one's imports and threads cannot touch
another's timings), with its full arguments, or with its smoke arguments under `--quick`. A
quick run writes into results/quick/ (ignored by git), never over the recorded results. At the
end it writes RESULTS/run.json: which benchmarks ran, their exit status and wall time, and the
environment. Timings are only comparable on a quiet machine: on a shared one, hold a lock
(e.g. `flock /tmp/mdq-cpu.lock python benchmarks/run.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """One benchmark script: what it measures, its full and smoke arguments, and what a full run costs."""

    script: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = ("--quick",)  # None: not part of a smoke run (it needs a full run's outputs)
    cost: str = "minutes"
    outputs: tuple[str, ...] = ()  # results/NAME.json files it writes (default: its own name)
    cuda: bool = False  # a full run needs a CUDA device (its smoke run does not)


BENCHMARKS: dict[str, Bench] = {
    "hooks": Bench("hooks.py", "registry dispatch and import time vs pluggy", quick=("--imports", "3", "--number", "20000"),
                   cost="~1 min", outputs=("hooks_dispatch", "hooks_import")),
    "startup": Bench("startup.py", "`mdq --help` and plugin registration vs a bare click app", quick=("--runs", "3"),
                     cost="~2 min"),
    "resolver": Bench("resolver.py", "PubGrub resolver vs resolvelib", cost="~5 min"),
    "runtime": Bench("runtime.py", "snapshot read, apply latency, ledger appends, replay",
                     quick=("--events", "20000", "--appends", "50"), cost="~2 min",
                     outputs=("runtime_snapshot", "runtime_apply", "runtime_ledger", "runtime_replay")),
    "moe": Bench("moe.py", "CDSP-MoE block-sparse inference, training step, interference test over seeds",
                 quick=("--epochs", "2", "--seeds", "0-1"), cost="~10 min",
                 outputs=("moe_sparse", "moe_train_step", "moe_interference")),
    "flexattn": Bench("flexattn.py", "matcher, reward, window attention", cost="~3 min"),
    "flexattn_text": Bench("flexattn.py", "matcher and reward scoring throughput (text only, CPU-time medians)",
                           full=("--no-attn",), quick=("--quick", "--no-attn"), cost="~3 min"),
    "flexattn_quality": Bench("flexattn_quality.py", "the reward ranked against labels on a held-out set", quick=()),
    "serve": Bench("serve.py", "mdq serve: requests/s and latency vs in-process, replicas across a promote and a rollback",
                   cost="~2 min", outputs=("serve_endpoint", "serve_hotplug")),
    "quant": Bench("quant.py", "RTN / GPTQ / AWQ on SmolLM2-135M, GPTQ over calibration draws", cost="~2.5 h on 2 cores"),
    "decode": Bench("decode.py", "loaded w4 model vs float: decode and prefill tokens/s (after quant.py)",
                    quick=None, cost="~15 min on 2 cores"),
    "interop": Bench("interop.py", "writer x loader perplexity across GPTQ / compressed-tensors tools (after quant.py)",
                     quick=None, cost="~1 h on 2 cores"),
    "gpu": Bench("gpu.py", "triton dequant-matmul vs the torch path and a float16 matmul (needs a CUDA GPU)",
                 quick=("--smoke",), cost="~2 min on a GPU", cuda=True),
    "generate": Bench("generate.py", "tokens/s of the generate pipeline vs transformers' generate", cost="~10 min"),
    "geoquant": Bench("geoquant.py", "MD time, MD vs loss over seeds, classification time, planted secrets",
                      cost="~1.5 h on 2 cores"),
    "mixed_precision": Bench("mixed_precision.py", "float16 outlier rows: selectors at equal budget under GPTQ",
                             full=("--selectors", "random,weight-error,hessian,md"), cost="~1.5 h on 2 cores"),
    "mixed_precision_columns": Bench("mixed_precision.py", "OWQ weak input columns in float16 under GPTQ vs plain GPTQ",
                                     full=("--selectors", "columns", "--out", "mixed_precision_columns"),
                                     quick=("--quick", "--selectors", "columns", "--out", "mixed_precision_columns"),
                                     cost="~45 min on 2 cores", outputs=("mixed_precision_columns",)),
}


def select(only: str | None) -> list[str]:
    """Return the benchmark names to run, in order; an unknown name is an error before anything runs."""
    if only is None:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",")]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not all(names):
        raise SystemExit(f"run.py: --only {only!r}: unknown benchmark(s) {unknown or ['(empty)']}; "
                         f"known: {', '.join(BENCHMARKS)}")
    return [n for n in BENCHMARKS if n in names]


def cuda_present() -> bool:
    """Return True where torch sees a CUDA device (asked in a child process: run.py itself imports no torch)."""
    r = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                       capture_output=True, text=True)
    if r.returncode != 0:  # a broken torch is an error, not a machine without a GPU
        raise SystemExit(f"run.py: could not import torch to look for a CUDA device: {r.stderr.strip()[-500:]}")
    return r.stdout.strip() == "True"


def provenance(path: Path) -> str:
    """Say which commit and when a recorded results file came from (older files recorded no environment)."""
    if not path.exists():
        return "missing"
    doc = json.loads(path.read_text())
    env = doc.get("environment")
    if not env:
        log = subprocess.run(["git", "-C", str(HERE), "log", "-1", "--format=%h %cs", "--", str(path)],
                             capture_output=True, text=True).stdout.strip()
        return f"no environment recorded (an older run; last committed in {log or 'no commit'})"
    dirty = " + uncommitted changes" if env.get("dirty") else ""
    return f"commit {str(env.get('commit'))[:10]}{dirty}, {env.get('started_at')}, {env.get('wall_s', 0):.0f} s"


def main() -> None:
    """Run the chosen benchmarks one after the other; exit non-zero if any failed."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run of each (results go to results/quick/)")
    ap.add_argument("--only", help="comma-separated benchmark names (see --list)")
    ap.add_argument("--list", action="store_true",
                    help="list the benchmarks, what a full run costs, and the commit each recorded result came from")
    a = ap.parse_args()
    names = select(a.only)
    if a.list:
        for n in names:
            b = BENCHMARKS[n]
            print(f"{n:<16} {b.cost:<20} {b.what}")
            for out in b.outputs or (n,):
                print(f"{'':<16} results/{out}.json: {provenance(HERE / 'results' / f'{out}.json')}")
        return
    env = dict(os.environ)
    if a.quick:
        env["MDQ_BENCH_RESULTS"] = str(HERE / "results" / "quick")
    results = Path(env.get("MDQ_BENCH_RESULTS") or HERE / "results")
    sys.path.insert(0, str(HERE))
    from _common import environment

    runs = []
    for n in names:
        b = BENCHMARKS[n]
        if a.quick and b.quick is None:
            print(f"== {n}: not part of a smoke run (it reads what a full run of another benchmark wrote)", flush=True)
            continue
        if b.cuda and not a.quick and not cuda_present():
            print(f"== {n}: skipped, no CUDA device here (its full run measures a GPU)", flush=True)
            runs.append({"benchmark": n, "skipped": "no CUDA device", "returncode": 0, "wall_s": 0.0})
            continue
        cmd = [sys.executable, str(HERE / b.script), *(b.quick if a.quick else b.full)]
        print(f"== {n}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(cmd, env=env, cwd=HERE.parent).returncode
        runs.append({"benchmark": n, "args": cmd[2:], "returncode": rc, "wall_s": time.perf_counter() - t0})
        print(f"== {n}: exit {rc} in {runs[-1]['wall_s']:.0f} s", flush=True)
    results.mkdir(parents=True, exist_ok=True)
    (results / "run.json").write_text(json.dumps({"quick": a.quick, "runs": runs, "environment": environment()},
                                                 indent=2) + "\n")
    failed = [r["benchmark"] for r in runs if r["returncode"] != 0]
    skipped = [r["benchmark"] for r in runs if "skipped" in r]
    print(f"ran {len(runs) - len(skipped)} benchmark(s) in {sum(r['wall_s'] for r in runs):.0f} s"
          + (f"; skipped: {', '.join(skipped)}" if skipped else "")
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
