"""mdq's side of the quantization benchmark, one job per process (so peak RSS is the job's own).

    python mdq_job.py quantize PROTO OUT_DIR rtn|gptq|gptq-fp32|gptq-bf16|awq BITS GROUP SEED FORMAT [sym]
    python mdq_job.py eval PROTO CHECKPOINT_DIR [torch]      (a float or quantized checkpoint, any format)

Quantization streams the float checkpoint block by block, as `mdq quantize` does; evaluation
loads with mdq's loader (4-bit layers on the int4 CPU kernel unless `torch` asks for the exact
reference path) and measures exactly what the anchors' jobs measure (common.evaluate).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common import emit, evaluate, peak_rss_mb, protocol


def main() -> None:
    """Run one job and print its result."""
    import torch

    torch.set_num_threads(2)
    what, proto = sys.argv[1], protocol(sys.argv[2])
    if what == "quantize":
        from mdq_awq.awq import AWQ
        from mdq_gptq.gptq import GPTQ
        from mdq_quantkit.backends import RTN, quantize_model
        from mdq_quantkit.config import QuantConfig
        from mdq_quantkit.io import save
        from mdq_quantkit.models import load_for_quantization

        out, method, bits, group, seed, fmt = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]
        model, tok = load_for_quantization(proto["model_dir"])
        samples = [torch.tensor([w]) for w in proto["calibration"][seed]]
        algo = {"rtn": RTN, "gptq": GPTQ, "awq": AWQ,  # gptq: the default calibration dtype (auto)
                "gptq-fp32": lambda: GPTQ(calibration="float32"),
                "gptq-bf16": lambda: GPTQ(calibration="bfloat16")}[method]()
        t0 = time.perf_counter()
        sym = "sym" in sys.argv[9:]
        done = quantize_model(model, QuantConfig(bits, group, sym), algo, samples if algo.needs_calibration else [])
        quant_s = time.perf_counter() - t0
        save(model, out, tok, fmt)
        emit({"quant_s": quant_s, "peak_rss_mb": peak_rss_mb(), **({"settings": done["settings"]} if "settings" in done else {})})
    else:
        from mdq_quantkit.models import load_any

        path = Path(sys.argv[3])
        exact = len(sys.argv) > 4 and sys.argv[4] == "torch"

        res: dict = {}

        def load() -> torch.nn.Module:
            m = load_any(path)
            for q in m.modules():
                if exact and hasattr(q, "kernel_request"):
                    q.kernel_request = "torch"
                    q.choose_kernel()
            res["kernels"] = sorted({q.kernel for q in m.modules() if hasattr(q, "kernel_request")})
            return m

        def preimport() -> None:
            import transformers.models.llama.modeling_llama  # noqa: F401
            from transformers import AutoModelForCausalLM  # noqa: F401

            from mdq_quantkit import cpukernel, ctensors, hf_gptq, io, skeleton  # noqa: F401

        emit(evaluate(load, proto, res, preimport))


if __name__ == "__main__":
    main()
