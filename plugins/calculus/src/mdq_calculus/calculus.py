"""The MDQ calculus (docs/concepts.md §5): quantize a proposed change, penalize non-commuting operators,
clip to admissible intervals, and solve the multi-objective balance point.

    Q(v)     = sgn(v) * min(|v|**beta, eta)                       beta < 1: sub-linear steps; eta caps risk
    Delta_i  = Q(v_i) - lambda_comm * sum_j ||[G_i, G_j]|| * pi_j  (j != i)
    Delta   <- Pi_adm(Delta)                                      clip into [lo_i, hi_i]
    Delta*   = argmax Delta^T v - 1/2 Delta^T Lambda Delta = Lambda^{-1} v   (Lambda symmetric positive definite)

Worked example: v = (0.04, -0.09), beta = 0.5, eta = 0.05: Q(v) = (0.05, -0.05), since
0.04**0.5 = 0.2 and 0.09**0.5 = 0.3 both exceed the cap 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mdqcore.errors import MdqError


class CalculusError(MdqError, ValueError):
    """Inputs the calculus cannot use (shapes, non-finite values, a singular Lambda)."""


def _vec(name: str, x: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise CalculusError(f"{name} must be a vector, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise CalculusError(f"{name} has non-finite entries at {np.flatnonzero(~np.isfinite(a)).tolist()}")
    return a


def quantize(v: Sequence[float] | np.ndarray, beta: float, eta: float) -> np.ndarray:
    """Q(v) = sgn(v) min(|v|^beta, eta), element-wise."""
    if not 0 < beta <= 1:
        raise CalculusError(f"beta must be in (0, 1] (sub-linear steps), got {beta}")
    if not eta > 0:
        raise CalculusError(f"eta (the step cap) must be > 0, got {eta}")
    v = _vec("v", v)
    return np.sign(v) * np.minimum(np.abs(v) ** beta, eta)


def commutator_norms(generators: np.ndarray) -> np.ndarray:
    """C_ij = ||G_i G_j - G_j G_i||_F for generators of shape (n, d, d)."""
    g = np.asarray(generators, dtype=np.float64)
    if g.ndim != 3 or g.shape[1] != g.shape[2]:
        raise CalculusError(f"generators must have shape (n, d, d), got {g.shape}")
    gg = np.einsum("iab,jbc->ijac", g, g)
    comm = gg - gg.transpose(1, 0, 2, 3)
    return np.linalg.norm(comm, axis=(2, 3))


def commutator_penalty(C: np.ndarray, pi: Sequence[float] | np.ndarray, lambda_comm: float) -> np.ndarray:
    """lambda_comm * sum_{j != i} C_ij pi_j for every i."""
    C = np.asarray(C, dtype=np.float64)
    pi = _vec("pi", pi)
    if C.shape != (pi.size, pi.size):
        raise CalculusError(f"commutator matrix must be {pi.size}x{pi.size} to match pi, got {C.shape}")
    off = C - np.diag(np.diag(C))
    return lambda_comm * off @ pi


def propose_deltas(v: Sequence[float], *, beta: float, eta: float, lambda_comm: float = 0.0,
                   C: np.ndarray | None = None, pi: Sequence[float] | None = None) -> np.ndarray:
    """Delta_i = Q(v_i) - commutator penalty, with the penalty's sign opposing the step."""
    q = quantize(v, beta, eta)
    if C is None or lambda_comm == 0.0:
        return q
    pen = commutator_penalty(C, pi if pi is not None else np.ones_like(q), lambda_comm)
    # the penalty shrinks a step toward zero and never flips its direction
    return np.sign(q) * np.maximum(np.abs(q) - pen, 0.0)


def clip(delta: np.ndarray, current: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """Pi_adm: shrink each delta so that current + delta stays in [lo, hi]."""
    cur, lo_, hi_ = _vec("current", current), _vec("lo", lo), _vec("hi", hi)
    if np.any(lo_ > hi_):
        raise CalculusError(f"admissible interval with lo > hi at {np.flatnonzero(lo_ > hi_).tolist()}")
    return np.clip(cur + delta, lo_, hi_) - cur


def balance(v: Sequence[float], Lambda: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Delta* = Lambda^{-1} v, the maximizer of Delta^T v - 1/2 Delta^T Lambda Delta."""
    v = _vec("v", v)
    L = np.asarray(Lambda, dtype=np.float64)
    if L.shape != (v.size, v.size):
        raise CalculusError(f"Lambda must be {v.size}x{v.size} to match v, got {L.shape}")
    if not np.allclose(L, L.T, atol=1e-12):
        raise CalculusError("Lambda must be symmetric (a coupling penalty between i and j is one number)")
    try:
        chol = np.linalg.cholesky(L)
    except np.linalg.LinAlgError:
        eig = np.linalg.eigvalsh(L)
        raise CalculusError(f"Lambda is not positive definite (smallest eigenvalue {eig.min():.3g}): the objective "
                            f"has no maximum; add a ridge, e.g. Lambda + {max(1e-6, -eig.min() * 1.01):.3g} I") from None
    y = np.linalg.solve(chol, v)
    return np.linalg.solve(chol.T, y)
