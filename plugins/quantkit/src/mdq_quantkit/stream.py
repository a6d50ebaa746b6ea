"""Quantize without holding the float model: blocks are read from the checkpoint one at a time.

`load_streaming(dir)` builds the architecture with its parameters on meta, loads everything
outside the transformer blocks (embeddings, final norm, head), and attaches a `BlockStream`.
`quantize_model` asks the stream for block i just before quantizing it; once the block's linear
layers are replaced by packed QuantLinear layers its float weights are garbage, so at any time
only one block's float weights (plus the calibration activations) are resident. The
checkpoint is memory-mapped by safetensors and read tensor by tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .skeleton import empty_model, set_tensor
from .st import checkpoint_tensors, load_tensors


class BlockStream:
    """Loads block i's float tensors from a checked checkpoint on demand."""

    def __init__(self, index: dict[str, Any], prefix: str, n_blocks: int, source: Path) -> None:
        self.index, self.prefix, self.n_blocks, self.source = index, prefix, n_blocks, source

    def names(self, i: int) -> list[str]:
        """Return the checkpoint's tensor names of block i."""
        head = f"{self.prefix}.{i}."
        return sorted(n for n in self.index if n.startswith(head))

    def check_finite(self) -> None:
        """Read every block tensor once, refusing NaN / Inf before any work (names the block and tensor)."""
        for i in range(self.n_blocks):
            for name in self.names(i):
                t = load_tensors(self.index, [name])[name]
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    bad = (~torch.isfinite(t)).nonzero()[0].tolist()
                    short = name[len(f"{self.prefix}.{i}."):]
                    raise ValueError(f"block {i} {short.removesuffix('.weight')} has a non-finite weight at index {bad} "
                                     f"({self.index[name][0].name}: {name}); fix the checkpoint before quantizing")

    def outside(self) -> list[str]:
        """Return the checkpoint's tensor names outside the blocks (embeddings, final norm, head)."""
        return sorted(n for n in self.index if not n.startswith(self.prefix + "."))

    def release_outside(self, model: nn.Module) -> None:
        """Put the parameters outside the blocks on meta while the blocks are quantized (`restore_outside` reads them again).

        Once the first block's inputs are captured nothing outside the blocks runs until the
        end, and SmolLM2's float32 embedding alone is 113 MB of the quantizer's peak.
        """
        for name in self.outside():
            parent, _, leaf = name.rpartition(".")
            mod = model.get_submodule(parent) if parent else model
            p = mod._parameters.get(leaf)
            if p is not None:
                mod._parameters[leaf] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"),
                                                     requires_grad=False)
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()

    def restore_outside(self, model: nn.Module) -> None:
        """Read the tensors outside the blocks back from the checkpoint (after `release_outside`)."""
        for name, v in load_tensors(self.index, self.outside()).items():
            set_tensor(model, name, v)
        if getattr(model.config, "tie_word_embeddings", False):
            model.tie_weights()

    def materialize(self, model: nn.Module, i: int) -> None:
        """Load block i's tensors into the model (float32), refusing one left without data."""
        names = self.names(i)
        for name, v in load_tensors(self.index, names).items():
            set_tensor(model, name, v)
        block = model.get_submodule(f"{self.prefix}.{i}")
        missing = [n for n, p in block.named_parameters() if p.is_meta]
        if missing:
            raise ValueError(f"{self.source} lacks block {i}'s tensors {missing[:3]}; the checkpoint is incomplete")


def load_streaming(path: str | Path) -> nn.Module:
    """Return a float checkpoint's model with its blocks left unloaded and a BlockStream attached (`mdq_stream`)."""
    from transformers import AutoConfig

    from .layerwise import blocks_of

    p = Path(path)
    index = checkpoint_tensors(p)
    model = empty_model(AutoConfig.from_pretrained(p))
    prefix, blocks = blocks_of(model)
    stream = BlockStream(index, prefix, len(blocks), p)
    stream.restore_outside(model)
    inblocks = {f"{prefix}.{i}" for i in range(len(blocks))}
    missing = [n for n, t in model.named_parameters() if t.is_meta and not any(n.startswith(b + ".") for b in inblocks)]
    if missing:
        raise ValueError(f"{p} lacks tensors the model needs, e.g. {missing[:3]}; the checkpoint is incomplete")
    model.mdq_stream = stream
    return model
