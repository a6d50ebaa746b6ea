"""Save and load quantized models: safetensors for tensors, JSON for the config (no pickle).

A directory holds `model.safetensors` (QuantLinear buffers qweight / scales / zeros / bias, every
other tensor in float16), `mdq_quant.json` (format, quantization config, backend, quantized module
names, which tensors are tied), the model's `config.json` and, when given, the tokenizer files.
It loads without the calibration data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import QuantConfig
from .layerwise import shape_of
from .qlinear import QuantLinear

FORMAT = "mdq-quant"
VERSION = 1


def save_quantized(model: nn.Module, out_dir: str | Path, tokenizer: Any = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the quantized model to `out_dir`; return the directory."""
    from safetensors.torch import save_file

    meta = getattr(model, "mdq_quant", None)
    if meta is None:
        raise ValueError("this model was not quantized by mdq (no mdq_quant metadata); run quantize_model first")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, t in model.state_dict(keep_vars=False).items():
        if t.data_ptr() in seen and t.numel():  # tied weights (e.g. lm_head = embed_tokens) are stored once
            tied[name] = seen[t.data_ptr()]
            continue
        seen[t.data_ptr()] = name
        tensors[name] = t.half() if t.is_floating_point() and not name.endswith(".scales") else t
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"))
    model.config.save_pretrained(out)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    doc = {"format": FORMAT, "version": VERSION, **meta, "tied": tied, **(extra or {})}
    (out / "mdq_quant.json").write_text(json.dumps(doc, indent=2))
    return out


def load_quantized(path: str | Path) -> nn.Module:
    """Load a directory written by `save_quantized` (float32 compute, packed weights kept packed)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM

    p = Path(path)
    try:
        doc = json.loads((p / "mdq_quant.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p / 'mdq_quant.json'} is missing or not JSON ({exc})") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{p} holds format {doc.get('format')!r} v{doc.get('version')}, expected {FORMAT} v{VERSION}")
    cfg = QuantConfig.from_json(doc["config"])
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(p), dtype=torch.float32)
    for name in doc["modules"]:
        layer = model.get_submodule(name)
        out_f, in_f = shape_of(layer)
        q = QuantLinear(in_f, out_f, cfg, bias=getattr(layer, "bias", None) is not None)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, q)
    state = load_file(str(p / "model.safetensors"))
    want = model.state_dict()
    for name, src in doc.get("tied", {}).items():
        state[name] = state[src]
    for name in want:  # files written before kept rows existed have none
        if name.endswith((".keep_idx", ".keep_rows")) and name not in state:
            state[name] = want[name]
    missing = sorted(set(want) - set(state))
    if missing:
        raise ValueError(f"{p / 'model.safetensors'} lacks {len(missing)} tensors, e.g. {missing[:3]}")
    model.load_state_dict({k: (v.to(want[k].dtype) if v.is_floating_point() else v) for k, v in state.items()},
                          strict=True)
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    for m in model.modules():
        if isinstance(m, QuantLinear):
            m.choose_kernel()
    model.mdq_quant = {k: doc[k] for k in ("backend", "config", "modules")}
    return model.eval()
