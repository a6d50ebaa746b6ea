"""Gradient-conflict detection per basis dimension, and its feedback into alpha (docs/concepts.md §8).

When tasks A and B both use basis dim j, compare the gradients their losses send to j's
parameters (column U[:, j] and row V[j, :]). cos < 0 is a conflict. The feedback lowers alpha
on j for the expert with the weaker claim to it, so the most conflicting task moves out of the
shared dimension, while long-standing agreement keeps j shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layer import CDSPMoE


def basis_gradients(layer: CDSPMoE, loss: torch.Tensor) -> torch.Tensor:
    """Return (N, 2d): for each basis dim j the gradient of `loss` on [U[:, j], V[j, :]]."""
    gU, gV = torch.autograd.grad(loss, (layer.U, layer.V), retain_graph=True, allow_unused=True)
    gU = torch.zeros_like(layer.U) if gU is None else gU
    gV = torch.zeros_like(layer.V) if gV is None else gV
    return torch.cat([gU.T, gV], dim=1)


def usage(layer: CDSPMoE, x: torch.Tensor, task: torch.Tensor, task_id: int) -> torch.Tensor:
    """Return (N,) how much task `task_id` uses each basis dim: mean gate-weighted mask."""
    with torch.no_grad():
        rows = task == task_id
        if not rows.any():
            return torch.zeros(layer.cfg.n_basis)
        g = layer.gates(x[rows], task[rows]).mean(0)                           # (E,)
        m = torch.zeros_like(layer.alpha).scatter_(1, layer.picked(), 1.0)    # (E, N)
        return g @ m


@dataclass
class ConflictReport:
    """Per-dimension cosines for one task pair and what the feedback did."""

    cos: torch.Tensor          # (N,), NaN where the dim is not shared
    shared: int                # dims both tasks use
    conflicts: int             # shared dims with cos < 0
    moved: int                 # alpha entries lowered

    @property
    def interference(self) -> float:
        """Mean conflict: the share of shared dims whose task gradients disagree."""
        return self.conflicts / self.shared if self.shared else 0.0


def detect_and_feed_back(layer: CDSPMoE, loss_a: torch.Tensor, loss_b: torch.Tensor, x: torch.Tensor,
                         task: torch.Tensor, a: int = 0, b: int = 1, *, threshold: float = 0.05,
                         step: float = 0.05, feedback: bool = True) -> ConflictReport:
    """Compute per-dim gradient cosines between tasks a and b and push conflicting dims apart in alpha.

    With `feedback=False` the conflicts are only measured (alpha is left alone), e.g. once the
    masks are frozen.
    """
    ga, gb = basis_gradients(layer, loss_a), basis_gradients(layer, loss_b)
    ua, ub = usage(layer, x, task, a), usage(layer, x, task, b)
    shared = (ua > threshold) & (ub > threshold)
    cos = torch.nn.functional.cosine_similarity(ga, gb, dim=1, eps=1e-12)
    cos = torch.where(shared, cos, torch.full_like(cos, float("nan")))
    conflict = shared & (cos < 0)
    moved = 0
    if feedback and conflict.any():
        with torch.no_grad():
            m = torch.zeros_like(layer.alpha).scatter_(1, layer.picked(), 1.0)
            ga_e = layer.gates(x[task == a], task[task == a]).mean(0)
            gb_e = layer.gates(x[task == b], task[task == b]).mean(0)
            ea, eb = int(ga_e.argmax()), int(gb_e.argmax())
            for j in conflict.nonzero(as_tuple=True)[0].tolist():
                owners = [e for e in (ea, eb) if m[e, j] > 0]
                if len(set(owners)) < 2:
                    continue  # one expert serves both tasks here: the gate, not alpha, must separate them
                loser = min(owners, key=lambda e: float(layer.alpha[e, j]))
                layer.alpha[loser, j] -= step * float(-cos[j])
                moved += 1
    return ConflictReport(cos, int(shared.sum()), int(conflict.sum()), moved)
