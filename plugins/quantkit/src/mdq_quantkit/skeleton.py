"""A model built from its config without allocating its weights, then filled tensor by tensor.

Loaders of quantized checkpoints (ours, GPTQ, compressed-tensors) and the streaming quantizer
build the architecture with every parameter on the meta device (buffers such as rotary tables
are real), put QuantLinear layers where the checkpoint has packed weights, and assign the
remaining tensors from the file. Whatever is still on meta afterwards is missing from the file,
and is reported by name instead of being initialised at random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


def empty_model(config: Any) -> nn.Module:
    """Return the causal-LM architecture of `config` with its parameters on meta (no memory), in eval mode."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    cfg = _plain(config)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    return model.eval()


def _plain(config: Any) -> Any:
    """Return a copy of a transformers config without its quantization_config (we build the quantized layers)."""
    import copy

    cfg = copy.deepcopy(config)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    return cfg


def set_tensor(model: nn.Module, name: str, value: Tensor) -> None:
    """Assign a parameter or buffer by dotted name, in float32 for floating tensors, checking its shape."""
    parent, _, leaf = name.rpartition(".")
    try:
        mod = model.get_submodule(parent) if parent else model
        old = getattr(mod, leaf)
    except AttributeError:
        raise ValueError(f"tensor {name!r} belongs to no parameter of this model; is the checkpoint for another "
                         f"architecture?") from None
    if old is not None and tuple(old.shape) != tuple(value.shape):
        raise ValueError(f"tensor {name!r} has shape {tuple(value.shape)} but the model expects {tuple(old.shape)}")
    v = value.float() if value.is_floating_point() else value
    if isinstance(old, nn.Parameter) or leaf in mod._parameters:
        mod._parameters[leaf] = nn.Parameter(v, requires_grad=False)
    else:
        mod._buffers[leaf] = v


def finish(model: nn.Module, source: str | Path) -> nn.Module:
    """Tie weights, then refuse a model with any parameter still on meta (missing from `source`)."""
    if getattr(model.config, "tie_word_embeddings", False):
        model.tie_weights()
    missing = [n for n, p in list(model.named_parameters()) + list(model.named_buffers()) if p.is_meta]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} tensors the model needs, e.g. {missing[:3]}; "
                         f"the checkpoint is incomplete")
    return model.eval()


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the named submodule was."""
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
