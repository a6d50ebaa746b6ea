"""Save and load quantized models in mdq's own format: safetensors for tensors, JSON for the config (no pickle).

A directory holds `mdq_model.safetensors` (QuantLinear buffers qweight / scales / zeros / bias /
kept rows / input permutation, every other tensor in float16), `mdq_quant.json` (format,
quantization config, backend, quantized module names, which tensors are tied), `config.json`
and, when given, the tokenizer files. It loads without the calibration data.

Other tools must not mistake it for a plain float checkpoint (transformers used to load such a
directory silently with every linear layer random): the weights file is not named
`model.safetensors`, and `config.json` carries `quantization_config: {"quant_method": "mdq"}`,
so `from_pretrained` stops with "no file named model.safetensors" after warning about the
unknown method. For other tools, export a standard checkpoint (`--format gptq` or
`--format compressed-tensors`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import QuantConfig
from .qlinear import VARIABLE, QuantLinear

FORMAT = "mdq-quant"
VERSION = 1
WEIGHTS = "mdq_model.safetensors"
LEGACY_WEIGHTS = "model.safetensors"  # directories written before issue #19
SAVE_FORMATS = ("mdq", "gptq", "compressed-tensors")


def save(model: nn.Module, out_dir: str | Path, tokenizer: Any = None, fmt: str = "mdq",
         extra: dict[str, Any] | None = None) -> Path:
    """Write a quantized model in `fmt` (mdq, gptq or compressed-tensors); return the directory."""
    if fmt == "mdq":
        return save_quantized(model, out_dir, tokenizer, extra)
    if fmt == "gptq":
        from .hf_gptq import save_gptq

        return save_gptq(model, out_dir, tokenizer)
    if fmt == "compressed-tensors":
        from .ctensors import save_ct

        return save_ct(model, out_dir, tokenizer)
    raise ValueError(f"format must be one of {', '.join(SAVE_FORMATS)}, got {fmt!r}")


def check_save(fmt: str, cfg: QuantConfig, model: nn.Module) -> None:
    """Refuse, before any work, a format that cannot hold this model's layers at this config."""
    from .layerwise import blocks_of, linears_of, shape_of

    if fmt not in SAVE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(SAVE_FORMATS)}, got {fmt!r}")
    _, blocks = blocks_of(model)
    for i, b in enumerate(blocks):
        for n, lin in linears_of(b).items():
            out_f, in_f = shape_of(lin)
            if fmt == "gptq" and ((in_f * cfg.bits) % 32 or (out_f * cfg.bits) % 32):
                raise ValueError(f"the GPTQ layout needs in and out features times bits divisible by 32; block {i} {n} "
                                 f"is ({out_f}, {in_f}) at {cfg.bits} bits; use --format mdq")
            if fmt == "compressed-tensors" and cfg.group_size != -1 and in_f % cfg.group_size:
                raise ValueError(f"compressed-tensors needs group_size to divide every layer's input width; block {i} "
                                 f"{n} has {in_f} inputs and group_size is {cfg.group_size}; use a group size that "
                                 f"divides it (e.g. 64) or --format gptq")


def save_quantized(model: nn.Module, out_dir: str | Path, tokenizer: Any = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write the quantized model to `out_dir` in mdq's format; return the directory."""
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
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / WEIGHTS))
    conf = model.config.to_dict()
    conf["quantization_config"] = {"quant_method": "mdq", "format": FORMAT, "version": VERSION, **meta["config"],
                                   "note": "load with mdq (mdq eval ppl --model DIR); for other tools export with "
                                           "mdq quantize --format gptq or --format compressed-tensors"}
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    doc = {"format": FORMAT, "version": VERSION, **meta, "tied": tied, **(extra or {})}
    (out / "mdq_quant.json").write_text(json.dumps(doc, indent=2))
    return out


def load_quantized(path: str | Path) -> nn.Module:
    """Load a directory written by `save_quantized` (float32 compute, packed weights kept packed)."""
    from transformers import AutoConfig

    from .layerwise import give_back_memory
    from .skeleton import empty_model, finish, replace_module, set_tensor
    from .st import read_header

    p = Path(path)
    try:
        doc = json.loads((p / "mdq_quant.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p / 'mdq_quant.json'} is missing or not JSON ({exc})") from None
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{p} holds format {doc.get('format')!r} v{doc.get('version')}, expected {FORMAT} v{VERSION}")
    cfg = QuantConfig.from_json(doc["config"])
    weights = p / WEIGHTS if (p / WEIGHTS).is_file() else p / LEGACY_WEIGHTS
    header = read_header(weights)  # a truncated file is named before any work
    model = empty_model(AutoConfig.from_pretrained(p))
    for name in doc["modules"]:
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{p / 'mdq_quant.json'} names layer {name!r}, which this model does not have") from None
        out_f, in_f = _shape(layer)
        replace_module(model, name, QuantLinear(in_f, out_f, cfg, bias=getattr(layer, "bias", None) is not None))
    from .st import load_tensors

    state = load_tensors({k: (weights, v) for k, v in header.items()}, list(header))
    for name, src in doc.get("tied", {}).items():
        if src not in state:
            raise ValueError(f"{weights}: tied tensor {name!r} points at {src!r}, which the file lacks")
        state[name] = state[src]
    qnames = {n: model.get_submodule(n) for n in doc["modules"]}
    for name, v in state.items():
        mod, _, leaf = name.rpartition(".")
        if mod in qnames:
            continue
        set_tensor(model, name, v)
    for name, q in qnames.items():
        sub = {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
        missing = {"qweight", "scales", "zeros"} - set(sub)
        if missing:
            raise ValueError(f"{weights} lacks {', '.join(f'{name}.{m}' for m in sorted(missing))}")
        want = q.state_dict()
        for k in VARIABLE:  # files written before these existed have none
            sub.setdefault(k, want[k])
        for k, v in sub.items():
            if k in VARIABLE:
                continue
            if k not in want or tuple(v.shape) != tuple(want[k].shape):
                raise ValueError(f"{weights}: {name}.{k} has shape {tuple(v.shape)}, the {cfg.bits}-bit layer needs "
                                 f"{tuple(want[k].shape) if k in want else 'no such tensor'}")
        q.load_state_dict({k: (v.to(want[k].dtype) if v.is_floating_point() else v) for k, v in sub.items()}, strict=True)
        q.check_kept_columns(f"{weights}: {name}")
        q.choose_kernel(build=True)
    del state
    model = finish(model, weights)
    give_back_memory()
    model.mdq_quant = {k: doc[k] for k in ("backend", "config", "modules")}
    if "backend_settings" in doc:  # kept, so a re-saved checkpoint still says how it was made
        model.mdq_quant["backend_settings"] = doc["backend_settings"]
    return model


def _shape(layer: nn.Module) -> tuple[int, int]:
    from .layerwise import shape_of

    return shape_of(layer)
