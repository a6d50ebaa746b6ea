"""The triton dequant-matmul on a CUDA GPU against the torch path and a float16 matmul (issue #19, point 7).

    python benchmarks/gpu.py [--m 1,16,256,2048] [--bits 4] [--group 128] [--reps 100]
    python benchmarks/gpu.py --smoke      # tiny shapes on CPU under TRITON_INTERPRET=1: checks the script, times nothing

For each of SmolLM2-135M's linear shapes (q/o 576->576, k/v 576->192, gate/up 576->1536, down
1536->576) and each batch of M tokens, one run times, in alternation, with CUDA events (median
over `--reps` event pairs after warm-up, each pair around 10 calls; eager launch overhead is part
of a call's time, as it is in a model run without CUDA graphs):
- `triton`: our fused kernel (`kernels.dequant_matmul`) reading the packed codes each call;
- `torch, dequant + matmul`: the packed codes dequantized by torch, then a float16 matmul, each call
  (what a path without a fused kernel pays);
- `torch, cached weight`: QuantLinear's torch path, which keeps the dequantized float weight after
  the first call (a float model's speed and memory);
- `float16 matmul`: a plain float16 weight of the same shape, the anchor.
Each row also records the bytes the path keeps for its weight and its largest error against the
float32 product of the dequantized weight (relative to that product's largest value); a row over
`TOLERANCE` (1e-2: float16 inputs round at ~5e-4, and triton's `tl.dot` on float32 runs in TF32 on
CUDA, ~1e-3) is marked and makes the run exit 1 after writing its results, so a wrong kernel
cannot pass as a fast one. The GPU's name, torch, triton and CUDA versions go into results/gpu.json.

Without a CUDA device it refuses (exit 2) and writes nothing; `--smoke` runs every path on tiny
shapes on CPU under the triton interpreter, so the script is tested where CI runs, and writes
results/gpu-smoke.json, whose times say nothing. GPTQ itself runs on CPU only: its calibration pass and
solve allocate on the CPU, so GPTQ against gptqmodel on a GPU is not measured here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

TOLERANCE = 1e-2
CALLS = 10  # calls per timed event pair
SHAPES = {"q/o": (576, 576), "k/v": (576, 192), "gate/up": (576, 1536), "down": (1536, 576)}
SMOKE_SHAPES = {"tiny": (64, 48), "tiny, short last group": (80, 32)}


def _timer(device: str) -> Callable[[Callable[[], Any], int], float]:
    """Return a function timing fn over reps calls as a median in microseconds (CUDA events on a GPU)."""
    import torch

    def cuda(fn: Callable[[], Any], reps: int) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _call in range(CALLS):
                fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) * 1e3 / CALLS)
        return statistics.median(times)

    def cpu(fn: Callable[[], Any], reps: int) -> float:
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e6)
        return statistics.median(times)

    return cuda if device == "cuda" else cpu


def measure(shapes: dict[str, tuple[int, int]], ms: list[int], bits: int, group: int, reps: int,
            device: str) -> list[dict[str, Any]]:
    """Time every path on every (shape, M); return one row per (shape, M, path)."""
    import torch

    from mdq_quantkit.config import QuantConfig
    from mdq_quantkit.kernels import dequant_matmul
    from mdq_quantkit.qlinear import QuantLinear
    from mdq_quantkit.quant import dequantize, rtn

    time_it = _timer(device)
    gen = torch.Generator().manual_seed(0)
    rows: list[dict[str, Any]] = []
    for name, (k, n) in shapes.items():
        cfg = QuantConfig(bits, group)
        w = torch.randn(n, k, generator=gen) / k ** 0.5
        codes, s, z = rtn(w, cfg)
        layer = QuantLinear.from_codes(codes, s, z, cfg, kernel="torch").to(device)
        qw, sc, ze = layer.qweight, layer.scales, layer.zeros  # kept by the layer beside its cached weight
        packed = qw.nbytes + sc.nbytes + ze.nbytes
        deq = dequantize(codes, s.half().float(), z, cfg).to(device)  # what every path should compute
        w16 = deq.half()
        for m in ms:
            x = torch.randn(m, k, generator=gen).to(device).half()
            ref = x.float() @ deq.t()
            layer(x)  # builds the cached weight, so its bytes can be counted
            paths: dict[str, tuple[Callable[[], Any], int]] = {
                "triton": (lambda: dequant_matmul(x, qw, sc, ze, cfg), packed),
                "torch, dequant + matmul": (lambda: x @ dequantize(layer.codes(), sc, ze, cfg).half().t(), packed),
                "torch, cached weight": (lambda: layer(x), packed + layer._weight.nbytes),
                "float16 matmul": (lambda: x @ w16.t(), w16.nbytes),
            }
            times: dict[str, list[float]] = {p: [] for p in paths}
            for _round in range(3):  # alternated, so drift in clocks or load touches every path alike
                for p, (fn, _b) in paths.items():
                    times[p].append(time_it(fn, reps))
            f16 = statistics.median(times["float16 matmul"])
            for p, (fn, nbytes) in paths.items():
                us = statistics.median(times[p])
                err = float((fn().float() - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
                rows.append({"layer": name, "in": k, "out": n, "M": m, "path": p, "us": us,
                             "vs_float16": us / f16, "weight_KB": nbytes / 1024, "max_rel_err": err,
                             "ok": err <= TOLERANCE})
    return rows


def main() -> None:
    """Measure on the GPU (or smoke-test on CPU) and write results/gpu.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--m", default="1,16,256,2048", help="tokens per matmul, comma-separated")
    ap.add_argument("--bits", type=int, default=4, choices=(3, 4))
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU under TRITON_INTERPRET=1; times nothing")
    a = ap.parse_args()
    try:
        ms = [int(v) for v in a.m.split(",")]
        if not ms or min(ms) < 1:
            raise ValueError
    except ValueError:
        ap.error(f"--m takes positive integers separated by commas, got {a.m!r}")
    if a.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are imported
    import torch

    if not a.smoke and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here, so nothing is measured and results/gpu.json is left as it is "
              "(run it where a GPU is present, or pass --smoke to test the script on CPU)", file=sys.stderr)
        raise SystemExit(2)
    device = "cpu" if a.smoke else "cuda"
    rows = measure(SMOKE_SHAPES if a.smoke else SHAPES, [1, 3] if a.smoke else ms, a.bits,
                   32 if a.smoke else a.group, 2 if a.smoke else a.reps, device)
    import triton

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (smoke run on CPU, TRITON_INTERPRET=1)"
    extra = {"gpu": gpu, "cuda": torch.version.cuda, "triton": triton.__version__, "bits": a.bits,
             "group": 32 if a.smoke else a.group, "smoke": a.smoke}
    report("gpu-smoke" if a.smoke else "gpu", f"dequant-matmul paths on {gpu}",
           ["layer", "M", "path", "us", "vs_float16", "weight_KB", "max_rel_err", "ok"], rows, extra)
    wrong = [f"{r['layer']} M={r['M']} {r['path']}: {r['max_rel_err']:.2e}" for r in rows if not r["ok"]]
    if wrong:
        print(f"gpu.py: {len(wrong)} path(s) off the float32 product by more than {TOLERANCE:g} (a wrong kernel, "
              f"not a slow one): " + "; ".join(wrong), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
