"""The quantizer-backend interface, the model-level driver every backend shares, and RTN.

A backend quantizes one block at a time: `quantize_block(block, inputs, kwargs, cfg)` replaces
the block's linear layers with QuantLinear. A backend that runs the block anyway may offer
`quantize_block_forward`, returning (stats, the block's outputs or None) so the driver need not
run the block again. `quantize_model` validates everything first (no
work starts on a bad config, a model without linear layers or NaN weights), then walks the
blocks, feeding each the outputs of the already-quantized previous one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch import Tensor, nn

from .config import QuantConfig
from .layerwise import (
    blocks_of, bounded_heap, capture, check_model, forward_all, give_back_memory, linears_of, quantized_layer,
    replace, shape_of, weight_of,
)
from .qlinear import QuantLinear
from .quant import rtn

Progress = Callable[[int, int, str], None]


class Backend(Protocol):
    """What a quantizer backend provides (registered through the kernel's `register_quantizers`)."""

    name: str
    needs_calibration: bool

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Replace every linear layer of `block` with a QuantLinear; return per-layer stats."""
        ...


def quantize_model(model: nn.Module, cfg: QuantConfig, backend: Backend, samples: Sequence[Tensor] = (),
                   progress: Progress | None = None) -> dict[str, Any]:
    """Quantize every block's linear layers in place; return {"backend", "config", "seconds", "layers"}."""
    check_model(model)
    _, blocks = blocks_of(model)
    for i, b in enumerate(blocks):
        for n, lin in linears_of(b).items():
            cfg.group(shape_of(lin)[1])  # a group larger than a layer is refused before any work
    if backend.needs_calibration and not samples:
        raise ValueError(f"backend {backend.name!r} needs calibration samples")
    bounded_heap()
    t0 = time.perf_counter()
    inputs, kwargs = capture(model, samples) if backend.needs_calibration else ([], {})
    stats: dict[str, Any] = {}
    stream = getattr(model, "mdq_stream", None)
    if stream is not None:
        stream.release_outside(model)  # not used again until every block is quantized
    try:
        for i, block in enumerate(blocks):
            if progress:
                progress(i, len(blocks), f"block {i}")
            if stream is not None:
                stream.materialize(model, i)  # only this block's float weights are resident (streaming)
            outputs = None
            if hasattr(backend, "quantize_block_forward"):
                block_stats, outputs = backend.quantize_block_forward(block, inputs, kwargs, cfg)
            else:
                block_stats = backend.quantize_block(block, inputs, kwargs, cfg)
            for name, s in block_stats.items():
                stats[f"{i}.{name}"] = s
            if backend.needs_calibration and i + 1 < len(blocks):
                inputs = forward_all(block, inputs, kwargs) if outputs is None else outputs
            del outputs
            give_back_memory()
    finally:
        del inputs
        if stream is not None:
            stream.restore_outside(model)
    if progress:
        progress(len(blocks), len(blocks), "done")
    if stream is not None:
        del model.mdq_stream
    for m in model.modules():
        if isinstance(m, QuantLinear):
            m.kernel_request = "auto"
            m.choose_kernel()
    model.mdq_quant = {"backend": backend.name, "config": cfg.to_json(), "modules": _names(model)}
    done = {"backend": backend.name, "config": cfg.to_json(), "seconds": time.perf_counter() - t0, "layers": stats}
    if hasattr(backend, "settings"):  # e.g. the calibration dtype GPTQ's auto resolved to: the file says how it was made
        model.mdq_quant["backend_settings"] = done["settings"] = backend.settings()
    return done


def _names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, QuantLinear)]


class RTN:
    """Round-to-nearest, group-wise: the baseline (no calibration)."""

    name = "rtn"
    needs_calibration = False

    def quantize_block(self, block: nn.Module, inputs: list[Tensor], kwargs: dict[str, Any],
                       cfg: QuantConfig) -> dict[str, Any]:
        """Quantize each linear layer of the block independently."""
        out = {}
        for name, layer in linears_of(block).items():
            w = weight_of(layer)
            codes, scales, zeros = rtn(w, cfg)
            q = quantized_layer(layer, codes, scales, zeros, cfg)
            out[name] = {"weight_err": float((q.dequantized() - w).pow(2).sum())}
            replace(block, name, q)
        return out
