"""Local tangent spaces of a weight matrix's rows, block by block (docs/concepts.md §7, manifold extraction).

The rows of a layer's weight (out, in) are points. The matrix is cut into sub-blocks of at most
`m` rows x `m` columns (a short remainder, too small for a neighbourhood, is folded into the
previous block). Inside a sub-block each row's k nearest rows (LLE's neighbourhood graph) are
centred on their mean mu; the eigenvectors of that local covariance, taken until `var` of the
variance is explained, span the row's tangent plane T. The local covariance is diagonalized
through the (k+1) x (k+1) Gram matrix, so a basis vector never has to be materialized:
u_i = C^T v_i / sqrt(lambda_i). A row's tangent space over the whole layer is the direct sum
of its sub-block planes, which makes every norm below a root of per-block sums.

LLE's reconstruction weights (each row as an affine combination of its neighbours) are also
computed; their relative reconstruction error says how well the local linear model holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor


def spans(n: int, m: int, minimum: int) -> list[tuple[int, int]]:
    """Cut range(n) into pieces of m, folding a last piece shorter than `minimum` into the previous one."""
    cuts = [(a, min(a + m, n)) for a in range(0, n, m)]
    if len(cuts) > 1 and cuts[-1][1] - cuts[-1][0] < minimum:
        cuts[-2:] = [(cuts[-2][0], n)]
    return cuts


def check_weight(w: Tensor, what: str, k: int, m: int) -> None:
    """Refuse what a tangent space cannot be built from, saying where and what to do."""
    if w.dim() != 2:
        raise ValueError(f"{what}: expected a 2-D weight (out, in), got shape {tuple(w.shape)}")
    rows, cols = w.shape
    if m < 2:
        raise ValueError(f"{what}: block size must be >= 2, got {m}")
    if m > max(rows, cols):
        raise ValueError(f"{what}: block size {m} is larger than the layer ({rows} x {cols}); "
                         f"use block_size <= {max(rows, cols)}")
    if k < 1 or k + 1 > rows:
        raise ValueError(f"{what}: k = {k} neighbours needs at least {k + 1} rows, the layer has {rows}; use a smaller k")
    if not bool(torch.isfinite(w).all()):
        bad = (~torch.isfinite(w)).nonzero()[0].tolist()
        raise ValueError(f"{what}: non-finite weight at index {bad}; MD is undefined on NaN / Inf weights")
    const = (w.amax(1) == w.amin(1)).nonzero().flatten()
    if const.numel():
        raise ValueError(f"{what}: {const.numel()} constant (zero-variance) rows, first row {int(const[0])}; "
                         f"a constant row has no local geometry: exclude the layer (layers=...) or fix the weights")


@dataclass
class Tangents:
    """The local models of one sub-block, batched over column blocks: everything needed to project."""

    C: Tensor  # (B, r, k+1, c) neighbourhoods centred on their mean
    mu: Tensor  # (B, r, c) neighbourhood means
    V: Tensor  # (B, r, k+1, k+1) Gram eigenvectors, descending, columns beyond the kept rank zeroed
    inv_sqrt: Tensor  # (B, r, k+1) 1 / sqrt(lambda_i) for kept directions, else 0
    rank: Tensor  # (B, r) tangent dimension per row

    lam: Tensor  # (B, r, k+1) Gram eigenvalues, descending

    def coefficients(self, e: Tensor) -> Tensor:
        """Return e's coordinates in the orthonormal tangent basis (B, r, k+1), zero beyond the rank."""
        return torch.einsum("brni,brn->bri", self.V, torch.einsum("brnc,brc->brn", self.C, e)) * self.inv_sqrt

    def normal_sq(self, e: Tensor) -> Tensor:
        """Return ||(I - P_T) e||^2 per row (B, r) without forming the projection."""
        return (e.pow(2).sum(-1) - self.coefficients(e).pow(2).sum(-1)).clamp(min=0)

    def project(self, e: Tensor) -> Tensor:
        """Return P_T e for vectors e (B, r, c), one per row."""
        a = self.coefficients(e)
        return torch.einsum("brnc,brn->brc", self.C, torch.einsum("brni,bri->brn", self.V, a * self.inv_sqrt))

    def normal(self, e: Tensor) -> Tensor:
        """Return (I - P_T) e."""
        return e - self.project(e)


def _neighbour_index(X: Tensor, q: Tensor, k: int) -> Tensor:
    """Return the indices of the k+1 nearest rows of X (B, r, c) around each query row, the row itself first."""
    idx = torch.cdist(X[:, q], X).topk(k + 1, dim=-1, largest=False).indices
    # the row itself first (callers read it back as mu + C[:, :, 0]); a tie with a duplicate row is harmless
    idx[..., 0] = q
    return idx


def _gather_rows(X: Tensor, idx: Tensor) -> Tensor:
    """Return X's rows at idx (B, q, n) per batch entry: (B, q, n, c)."""
    return X[torch.arange(X.shape[0], device=X.device)[:, None, None], idx]


def local_tangents(X: Tensor, k: int = 15, var: float = 0.95, query: Tensor | None = None) -> Tangents:
    """Fit local tangent planes in a batch of sub-blocks X (B, r, c): for every row, or only the `query` rows.

    Neighbours are always searched among all r rows; `query` (row indices) limits whose planes are fitted.
    """
    if not 0 < var <= 1:
        raise ValueError(f"var must be in (0, 1], got {var}")
    q = torch.arange(X.shape[1], device=X.device) if query is None else query.to(X.device)
    N = _gather_rows(X, _neighbour_index(X, q, k))  # (B, q, k+1, c)
    mu = N.mean(2)
    C = N - mu.unsqueeze(2)
    lam, V = torch.linalg.eigh(C @ C.transpose(-1, -2))
    lam, V = lam.flip(-1).clamp(min=0), V.flip(-1)
    tiny = torch.finfo(X.dtype).tiny
    total = lam.sum(-1, keepdim=True).clamp(min=tiny)
    # keep directions until `var` is reached (the one that crosses it included)
    keep = (lam.cumsum(-1) - lam) / total < var - 1e-6
    keep &= lam > lam[..., :1] * 1e-10
    inv_sqrt = torch.where(keep, lam.clamp(min=tiny).rsqrt(), torch.zeros_like(lam))
    return Tangents(C=C, mu=mu, V=V, inv_sqrt=inv_sqrt, rank=keep.sum(-1), lam=lam)


def blocks(w: Tensor, m: int, k: int) -> Iterator[tuple[slice, list[slice], Tensor]]:
    """Yield (row slice, column slices, X (B, r, c)) per row block, column blocks of equal width batched."""
    rows, cols = w.shape
    by_width: dict[int, list[tuple[int, int]]] = {}
    for a, b in spans(cols, m, max(2, min(m, k + 1))):
        by_width.setdefault(b - a, []).append((a, b))
    for r0, r1 in spans(rows, m, k + 1):
        for group in by_width.values():
            X = torch.stack([w[r0:r1, a:b] for a, b in group])
            yield slice(r0, r1), [slice(a, b) for a, b in group], X


def lle_weights(X: Tensor, k: int = 15, reg: float = 1e-3) -> tuple[Tensor, Tensor, Tensor]:
    """Return (neighbour index (B, r, k), weights (B, r, k), relative reconstruction error (B, r)) of LLE's first step."""
    B, r, c = X.shape
    idx = _neighbour_index(X, torch.arange(r, device=X.device), k)[..., 1:]
    N = _gather_rows(X, idx)
    Z = N - X.unsqueeze(2)
    G = Z @ Z.transpose(-1, -2)
    tr = G.diagonal(dim1=-2, dim2=-1).sum(-1).clamp(min=1e-12)
    G = G + (reg * tr)[..., None, None] * torch.eye(k, dtype=X.dtype, device=X.device)
    Wt = torch.linalg.solve(G, torch.ones(B, r, k, 1, dtype=X.dtype, device=X.device)).squeeze(-1)
    Wt = Wt / Wt.sum(-1, keepdim=True)
    rec = torch.einsum("brk,brkc->brc", Wt, N)
    err = (rec - X).pow(2).sum(-1) / X.pow(2).sum(-1).clamp(min=1e-12)
    return idx, Wt, err
