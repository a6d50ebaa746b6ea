"""Anchor job in llm-compressor's venv: quantize with its GPTQ or AWQ, or load a compressed-tensors checkpoint.

    python llmc_job.py quantize PROTO MODEL_DIR OUT_DIR gptq|awq BITS GROUP SEED
    python llmc_job.py eval PROTO CHECKPOINT_DIR

Both asymmetric (like mdq's; llm-compressor's W4A16 preset for GPTQ is symmetric, which on this
dequantized-Q4_1 model loses to asymmetric round-to-nearest), at the given bits and group size,
lm_head kept.
"""

from __future__ import annotations

import sys
import time

from common import emit, evaluate, peak_rss_mb, protocol


def main() -> None:
    """Run one job and print its result."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    what, proto = sys.argv[1], protocol(sys.argv[2])
    if what == "quantize":
        from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
        from datasets import Dataset
        from llmcompressor import oneshot
        from llmcompressor.modifiers.awq import AWQModifier
        from llmcompressor.modifiers.quantization import GPTQModifier

        model_dir, out_dir, method = sys.argv[3], sys.argv[4], sys.argv[5]
        bits, group, seed = int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
        windows = proto["calibration"][seed]
        ds = Dataset.from_dict({"input_ids": windows, "attention_mask": [[1] * len(w) for w in windows]})
        scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
            num_bits=bits, type="int", symmetric=False, strategy="group", group_size=group))
        mod = GPTQModifier if method == "gptq" else AWQModifier
        recipe = mod(config_groups={"group_0": scheme}, ignore=["lm_head"])
        if not torch.cuda.is_available():
            # 0.14.0.1's AWQ pins cached activations for faster host-to-GPU copies, which a CPU-only torch
            # refuses ("Cannot access accelerator device"); pinning changes no value, so it is skipped here
            from llmcompressor.pipelines.cache import IntermediatesCache

            IntermediatesCache.pin_memory = lambda self, *a, **k: None
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        t0 = time.perf_counter()
        oneshot(model=model, dataset=ds, recipe=recipe, max_seq_length=proto["seqlen"],
                num_calibration_samples=len(windows))
        quant_s = time.perf_counter() - t0
        model.save_pretrained(out_dir, save_compressed=True)
        emit({"quant_s": quant_s, "peak_rss_mb": peak_rss_mb()})
    else:
        path = sys.argv[3]
        def preimport() -> None:
            import compressed_tensors  # noqa: F401
            import transformers.models.llama.modeling_llama  # noqa: F401

        emit(evaluate(lambda: AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), proto, {}, preimport))


if __name__ == "__main__":
    main()
