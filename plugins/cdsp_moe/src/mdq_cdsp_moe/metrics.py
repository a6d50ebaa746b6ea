"""Health metrics of a CDSP-MoE layer (docs/concepts.md §8)."""

from __future__ import annotations

import torch

from .layer import CDSPMoE


def rank_overlap(layer: CDSPMoE) -> float:
    """Share of live basis dims picked by two or more experts (should fall from high to low)."""
    with torch.no_grad():
        m = torch.zeros_like(layer.alpha).scatter_(1, layer.picked(), 1.0)
        count = m.sum(0)
        live = (count > 0).sum()
        return float((count > 1).sum() / live) if live else 0.0


def expert_overlap(layer: CDSPMoE) -> torch.Tensor:
    """Per expert: share of its k dims that some other expert also picks, (E,)."""
    with torch.no_grad():
        m = torch.zeros_like(layer.alpha).scatter_(1, layer.picked(), 1.0)
        others = m.sum(0, keepdim=True) - m
        return ((m * (others > 0)).sum(1) / layer.cfg.k)


def isolation_score(layer: CDSPMoE, x: torch.Tensor, task: torch.Tensor) -> float:
    """1 - overlap of the tasks' mean gate distributions (1: fully isolated; 0: identical routing)."""
    with torch.no_grad():
        tasks = sorted(set(task.tolist()))
        if len(tasks) < 2:
            return 0.0
        dists = [layer.gates(x[task == t], task[task == t]).mean(0) for t in tasks]
        pairs = [(i, j) for i in range(len(dists)) for j in range(i + 1, len(dists))]
        overlap = sum(float(torch.minimum(dists[i], dists[j]).sum()) for i, j in pairs) / len(pairs)
        return 1.0 - overlap
