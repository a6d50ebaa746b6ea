"""Anchor job in gptqmodel's venv: quantize with gptqmodel's GPTQ, or load a GPTQ checkpoint with it and evaluate.

    python gptqmodel_job.py quantize PROTO MODEL_DIR OUT_DIR BITS GROUP SEED [desc_act]
    python gptqmodel_job.py eval PROTO CHECKPOINT_DIR
"""

from __future__ import annotations

import sys
import time

from common import emit, evaluate, peak_rss_mb, protocol


def main() -> None:
    """Run one job and print its result."""
    import torch

    from gptqmodel import BACKEND, GPTQModel, QuantizeConfig

    torch.set_num_threads(2)
    what, proto = sys.argv[1], protocol(sys.argv[2])
    if what == "quantize":
        model_dir, out_dir, bits, group, seed = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
        calib = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in proto["calibration"][seed]]
        # asymmetric, like mdq's GPTQ: SmolLM2 here is a dequantized Q4_1 (asymmetric) model, on which gptqmodel's
        # symmetric default scored 15.31 at w4g128, worse than asymmetric round-to-nearest (15.76)
        cfg = QuantizeConfig(bits=bits, group_size=group, sym=False,
                             **({"desc_act": True} if "desc_act" in sys.argv[8:] else {}))
        model = GPTQModel.load(model_dir, cfg, device="cpu")
        t0 = time.perf_counter()
        model.quantize(calib, batch_size=1)
        quant_s = time.perf_counter() - t0
        model.save(out_dir)
        emit({"quant_s": quant_s, "peak_rss_mb": peak_rss_mb(), "config": cfg.to_dict() if hasattr(cfg, "to_dict") else str(cfg)})
    else:
        path = sys.argv[3]
        def preimport() -> None:
            import transformers.models.llama.modeling_llama  # noqa: F401

        emit(evaluate(lambda: GPTQModel.load(path, device="cpu", backend=BACKEND.TORCH).model, proto, {}, preimport))


if __name__ == "__main__":
    main()
