"""Layers that read the same input share one packed int4 form, so one kernel call serves them (issue #19).

At one token per step a 4-bit layer's kernel call costs about as much as its arithmetic, so
q/k/v (3 calls) and gate/up (2 calls) as one call each take 7 calls per Llama block down to 4.
Which layers read the same input is found, as in `layerwise.sequential_groups`, by running the
model once on a short probe and seeing which consecutive layers receive the very same tensor
object; no per-architecture table. Only layers on the int4 CPU kernel with the same input
width, bit width and group layout, and no input permutation, are joined.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .qlinear import QuantLinear


def shared_input_groups(model: nn.Module, probe: Tensor | None = None) -> list[list[str]]:
    """Return the names of consecutive int4 layers that received the same input tensor on a probe forward."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantLinear) and m.kernel == "int4"}
    seen: list[tuple[str, Tensor]] = []  # the tensors themselves are kept, so no id is reused during the probe
    hooks = [m.register_forward_pre_hook(lambda _m, args, n=n: seen.append((n, args[0]))) for n, m in layers.items()]
    try:
        with torch.no_grad():
            model(probe if probe is not None else torch.zeros(1, 2, dtype=torch.long), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    groups: list[list[str]] = []
    last: Tensor | None = None
    for n, t in seen:
        if last is not None and t is last and _joinable(layers[groups[-1][0]], layers[n]) and n not in groups[-1]:
            groups[-1].append(n)
        else:
            groups.append([n])
        last = t
    return [g for g in groups if len(g) > 1]


def _joinable(a: QuantLinear, b: QuantLinear) -> bool:
    return (a.in_features == b.in_features and a.cfg == b.cfg and not a.in_perm.numel() and not b.in_perm.numel()
            and a.scales.dtype == b.scales.dtype)


def fuse_shared_inputs(model: nn.Module, probe: Tensor | None = None) -> list[list[str]]:
    """Give each group of int4 layers that read the same input one shared packed form; return the groups."""
    from .cpukernel import SharedInput

    groups = shared_input_groups(model, probe)
    for names in groups:
        layers: list[Any] = [model.get_submodule(n) for n in names]
        first = layers[0]
        shared = SharedInput([q.codes() for q in layers], [q.scales for q in layers], [q.zeros for q in layers],
                             first.cfg.group(first.in_features))
        for i, q in enumerate(layers):
            q.share(shared, i)
    return groups
