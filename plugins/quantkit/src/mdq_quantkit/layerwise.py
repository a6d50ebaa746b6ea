"""Block-by-block quantization: find the transformer blocks and their linear layers (optimum's
discovery), capture each block's inputs, quantize it, and feed the next block the outputs of
the already-quantized one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .config import QuantConfig
from .qlinear import QuantLinear
from .quant import check_finite


class _Stop(Exception):
    pass


def blocks_of(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return (dotted name, ModuleList) of the model's transformer blocks."""
    from optimum.gptq.utils import get_block_name_with_pattern

    try:
        name = get_block_name_with_pattern(model)
    except ValueError:
        raise ValueError("no transformer blocks found in this model (expected e.g. model.layers or "
                         "transformer.h); it has nothing mdq can quantize block by block") from None
    return name, model.get_submodule(name)


def linears_of(block: nn.Module) -> dict[str, nn.Module]:
    """Return the block's linear layers (nn.Linear and transformers' Conv1D) by name, in forward order."""
    from optimum.gptq.utils import get_layers
    from transformers.pytorch_utils import Conv1D

    return get_layers(block, layers=[Conv1D, nn.Linear])


def shape_of(layer: nn.Module) -> tuple[int, int]:
    """Return (out_features, in_features) of a layer without copying its weight (Conv1D stores it transposed)."""
    out_f, in_f = layer.weight.shape
    return (in_f, out_f) if layer.__class__.__name__ == "Conv1D" else (out_f, in_f)


def weight_of(layer: nn.Module) -> Tensor:
    """Return a layer's weight as (out, in) float32 (Conv1D stores it transposed)."""
    return layer.weight.detach().float().t() if layer.__class__.__name__ == "Conv1D" else layer.weight.detach().float()


def set_weight(layer: nn.Module, w: Tensor) -> None:
    """Write an (out, in) weight back into a layer."""
    with torch.no_grad():
        layer.weight.copy_(w.t() if layer.__class__.__name__ == "Conv1D" else w)


def check_model(model: nn.Module) -> None:
    """Refuse a model with no quantizable linear layer or with NaN / Inf weights, before any work."""
    _, blocks = blocks_of(model)
    names = [n for i, b in enumerate(blocks) for n in linears_of(b)]
    if not names:
        raise ValueError("the model's blocks contain no linear layers to quantize")
    for i, b in enumerate(blocks):
        for n, lin in linears_of(b).items():
            check_finite(lin.weight, f"block {i} {n}")


def replace(block: nn.Module, name: str, q: QuantLinear) -> None:
    """Put a QuantLinear where the named layer was."""
    parent, _, leaf = name.rpartition(".")
    setattr(block.get_submodule(parent) if parent else block, leaf, q)


@torch.no_grad()
def capture(model: nn.Module, samples: Sequence[Tensor]) -> tuple[list[Tensor], dict[str, Any]]:
    """Return the first block's input hidden states for each sample and its keyword arguments."""
    _, blocks = blocks_of(model)
    inputs: list[Tensor] = []
    kwargs: dict[str, Any] = {}

    def hook(_mod: nn.Module, args: tuple, kw: dict) -> None:
        inputs.append(args[0] if args else kw.pop("hidden_states"))
        kwargs.update({k: v for k, v in kw.items() if k != "hidden_states"})
        raise _Stop

    h = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for s in samples:
            try:
                model(s, use_cache=False)
            except _Stop:
                pass
    finally:
        h.remove()
    return inputs, kwargs


def run_block(block: nn.Module, x: Tensor, kwargs: dict[str, Any]) -> Tensor:
    """Run one block and return its hidden-state output."""
    out = block(x, **kwargs)
    return out[0] if isinstance(out, tuple) else out


@torch.no_grad()
def layer_inputs(block: nn.Module, names: Sequence[str], inputs: Sequence[Tensor],
                 kwargs: dict[str, Any], fn: Callable[[str, Tensor], None], *, stop: bool = False) -> None:
    """Run the block on every input and call fn(layer name, layer input (tokens, in)) as each layer is reached.

    With `stop`, each forward is cut short once every named layer has been reached: the rest of
    the block is not needed to collect their inputs.
    """
    lin = linears_of(block)
    pending: set[str] = set()

    def hook(_m: nn.Module, a: tuple, n: str) -> None:
        fn(n, a[0].reshape(-1, a[0].shape[-1]).float())
        pending.discard(n)
        if stop and not pending:
            raise _Stop

    hooks = [lin[n].register_forward_pre_hook(lambda m, a, n=n: hook(m, a, n)) for n in names]
    try:
        for x in inputs:
            pending.update(names)
            try:
                run_block(block, x, kwargs)
            except _Stop:
                pass
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def sequential_groups(block: nn.Module, x: Tensor, kwargs: dict[str, Any]) -> list[list[str]]:
    """Return the block's linear layers grouped by shared input, in forward order (e.g. [q,k,v], [o], [gate,up], [down]).

    Found by running the block once on x (one sample) and comparing the tensors each layer
    receives, so it needs no per-architecture table.
    """
    seen: list[tuple[str, Tensor]] = []
    layer_inputs(block, list(linears_of(block)), [x[:1]], kwargs, lambda n, t: seen.append((n, t)))
    groups: list[list[str]] = []
    last: Tensor | None = None
    for n, t in seen:
        if last is not None and t.shape == last.shape and torch.equal(t, last):
            groups[-1].append(n)
        else:
            groups.append([n])
        last = t
    return groups


def quantized_layer(layer: nn.Module, codes: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig) -> QuantLinear:
    """Build the QuantLinear replacing `layer` (its bias kept)."""
    bias = getattr(layer, "bias", None)
    return QuantLinear.from_codes(codes, scales, zeros, cfg, None if bias is None else bias.detach())


def forward_all(block: nn.Module, inputs: Sequence[Tensor], kwargs: dict[str, Any]) -> list[Tensor]:
    """Return the block's outputs for every input (the next block's inputs)."""
    with torch.no_grad():
        return [run_block(block, x, kwargs) for x in inputs]
