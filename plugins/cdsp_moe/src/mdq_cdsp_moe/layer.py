"""The CDSP-MoE layer: one shared backbone, experts as top-k masks over its basis.

    h       = act(x U)                       (B, N)   U: d x N, the down-projection
    m_i     = top-k(alpha_i)                 (E, N)   each expert keeps k << N basis dims
    g       = softmax((1 - r) LN(W_g x) + r * s * normalize(b_task))   (B, E)
    y       = x + sum_i g_i (h * m_i) V  =  x + (h * (g m)) V          V: N x d, the up-projection

With act = identity this is exactly the note's y = x + sum_i g_i V^T diag(m_i) U^T x (our U, V
are its U and V^T); the default GELU makes each expert a masked FFN. Overlapping masks are
shared knowledge, disjoint masks specialists: sharing emerges from alpha, it is not a module.

The rank quota is hard in the forward pass and differentiable for alpha by a straight-through
estimator: m = hard + sigmoid(alpha) - stopgrad(sigmoid(alpha)), so the loss moves alpha as if
the mask were sigmoid(alpha) while only k dims per expert are ever live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "identity": lambda t: t}


@dataclass(frozen=True)
class CDSPConfig:
    """Shape and behaviour of one CDSP-MoE layer."""

    d: int                      # model width
    n_basis: int = 512          # N: over-complete basis dims of the shared backbone (e.g. 512, 1024)
    n_experts: int = 4          # E
    k: int = 64                 # rank quota: basis dims each expert keeps live (k << N)
    n_tasks: int = 1            # task ids the gate's task bias knows
    task_ratio: float = 0.5     # r: weight of the normalized task bias against the LayerNorm'd logits
    activation: str = "gelu"    # "identity" is the note's purely linear form
    alpha_noise: float = 1e-3   # tiny symmetry-breaking bias on alpha at init

    def __post_init__(self) -> None:
        for name in ("d", "n_basis", "n_experts", "n_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"CDSPConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.k <= self.n_basis:
            raise ValueError(f"CDSPConfig.k must be in [1, n_basis={self.n_basis}], got {self.k}: "
                             f"each expert keeps k of the N basis dims")
        if not 0.0 <= self.task_ratio <= 1.0:
            raise ValueError(f"CDSPConfig.task_ratio must be in [0, 1], got {self.task_ratio}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"CDSPConfig.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")


class CDSPMoE(nn.Module):
    """A residual CDSP-MoE layer; `forward(x, task)` with x of shape (..., d) and task of shape (...)."""

    def __init__(self, cfg: CDSPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, N, E = cfg.d, cfg.n_basis, cfg.n_experts
        self.U = nn.Parameter(torch.empty(d, N))
        self.V = nn.Parameter(torch.empty(N, d))
        nn.init.orthogonal_(self.U)  # orthonormal rows or columns, whichever is fewer
        nn.init.orthogonal_(self.V)
        self.alpha = nn.Parameter(cfg.alpha_noise * torch.randn(E, N))
        self.gate = nn.Linear(d, E)
        self.gate_ln = nn.LayerNorm(E)
        self.task_bias = nn.Parameter(torch.randn(cfg.n_tasks, E))
        self.act = ACTIVATIONS[cfg.activation]

    def picked(self) -> torch.Tensor:
        """Return the indices of each expert's top-k basis dims, (E, k)."""
        return torch.topk(self.alpha, self.cfg.k, dim=1).indices

    def masks(self) -> torch.Tensor:
        """Return the (E, N) masks: hard top-k in value, sigmoid(alpha) in gradient."""
        soft = torch.sigmoid(self.alpha)
        hard = torch.zeros_like(soft).scatter_(1, self.picked(), 1.0)
        return hard + soft - soft.detach()

    def gates(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Return gate probabilities (..., E): LN'd feature logits mixed with the normalized task bias."""
        self._check(x, task)
        r, E = self.cfg.task_ratio, self.cfg.n_experts
        logits = self.gate_ln(self.gate(x))                                  # (..., E), unit variance
        bias = F.normalize(self.task_bias, dim=-1) * math.sqrt(E)            # (T, E), same scale
        # the fixed ratio keeps a task command from erasing learned routing, and vice versa
        return torch.softmax((1 - r) * logits + r * bias[task], dim=-1)

    def forward(self, x: torch.Tensor, task: torch.Tensor, *, hard_route: bool = False) -> torch.Tensor:
        """y = x + (act(x U) * (g m)) V; with hard_route each row uses only its top expert."""
        g = self.gates(x, task)                                              # (..., E)
        if hard_route:
            g = F.one_hot(g.argmax(-1), self.cfg.n_experts).to(x.dtype)
        h = self.act(x @ self.U)                                             # (..., N)
        return x + (h * (g @ self.masks())) @ self.V                         # (..., d)

    def _check(self, x: torch.Tensor, task: torch.Tensor) -> None:
        if x.shape[-1] != self.cfg.d:
            raise ValueError(f"CDSPMoE expects inputs of width d={self.cfg.d}, got shape {tuple(x.shape)}")
        if task.shape != x.shape[:-1]:
            raise ValueError(f"task must have shape {tuple(x.shape[:-1])} (one id per row), got {tuple(task.shape)}")
        if task.numel() and (int(task.min()) < 0 or int(task.max()) >= self.cfg.n_tasks):
            bad = int(task.max()) if int(task.max()) >= self.cfg.n_tasks else int(task.min())
            raise ValueError(f"task id {bad} is outside the configured tasks 0..{self.cfg.n_tasks - 1}")

    def alpha_penalties(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (metabolic, determinism): mean sigmoid(alpha) (energy of live dims) and mean s(1-s)."""
        s = torch.sigmoid(self.alpha)
        return s.mean(), (s * (1 - s)).mean()
