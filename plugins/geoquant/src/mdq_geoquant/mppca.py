"""Refinement: a mixture of probabilistic PCA (Tipping & Bishop 1999) fitted by EM, per sub-block.

This is the linear form of the design's mixture VAE, and the one chosen here: its E and M steps are
closed-form, it is deterministic given a seed, it needs no training loop or learning rate, and
each component's principal subspace is directly a tangent plane. K components with latent
dimension q are fitted to the rows of each sub-block (batched over sub-blocks); a row's refined
tangent plane is the principal subspace of its most responsible component.

Initialization: the rows are split into K groups by a few Lloyd (k-means) iterations from seeded
rows. EM stops when the mean relative reconstruction error of the rows
||(I - U U^T)(x - mu)||^2 / ||x - mu||^2 improves by less than `tol` (1e-3, the design's
re-optimization threshold), or after `max_iter` iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MixtureTangents:
    """Refined tangent planes of a batch of sub-blocks: per component an orthonormal basis, per row its component."""

    U: Tensor  # (B, K, c, q) orthonormal principal subspaces
    mu: Tensor  # (B, K, c) component means
    assign: Tensor  # (B, r) the component of each row
    iters: int
    recon_err: float

    @property
    def rank(self) -> Tensor:
        """Tangent dimension per row (B, r): q everywhere."""
        return torch.full(self.assign.shape, self.U.shape[-1], device=self.U.device)

    def basis(self, rows: Tensor | None = None) -> Tensor:
        """Return each row's basis (B, r, c, q), or only for `rows` (local indices)."""
        a = self.assign if rows is None else self.assign[:, rows]
        return torch.gather(self.U, 1, a[..., None, None].expand(*a.shape, *self.U.shape[2:]))

    def normal_sq(self, e: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return ||(I - U U^T) e||^2 per row for e (B, r, c)."""
        coef = torch.einsum("brcq,brc->brq", self.basis(rows), e)
        return (e.pow(2).sum(-1) - coef.pow(2).sum(-1)).clamp(min=0)

    def normal(self, e: Tensor, rows: Tensor | None = None) -> Tensor:
        """Return (I - U U^T) e per row."""
        U = self.basis(rows)
        return e - torch.einsum("brcq,brq->brc", U, torch.einsum("brcq,brc->brq", U, e))


def _pca(S: Tensor, q: int) -> tuple[Tensor, Tensor]:
    """Return (top-q eigenvectors (.., c, q), sigma^2 = mean of the rest) of covariances S (.., c, c)."""
    lam, V = torch.linalg.eigh(S)
    lam, V = lam.flip(-1).clamp(min=0), V.flip(-1)
    c = S.shape[-1]
    sigma2 = lam[..., q:].sum(-1) / max(c - q, 1)
    return V[..., :q], sigma2.clamp(min=1e-12)


K_DEFAULT, Q_DEFAULT = 4, 8
MIN_ROWS = K_DEFAULT * (Q_DEFAULT + 1)  # rows a sub-block needs for the default mixture


def fit_mppca(X: Tensor, K: int = K_DEFAULT, q: int = Q_DEFAULT, *, max_iter: int = 20, tol: float = 1e-3,
              seed: int = 0) -> MixtureTangents:
    """Fit K PPCA components of latent dimension q to the rows of each sub-block X (B, r, c)."""
    B, r, c = X.shape
    if K < 1 or q < 1 or q >= c:
        raise ValueError(f"need K >= 1 and 1 <= q < {c} (columns), got K={K}, q={q}")
    if r < K * (q + 1):
        raise ValueError(f"{r} rows cannot support {K} components of dimension {q}; use fewer or smaller components")
    X = X.double()
    g = torch.Generator(device="cpu").manual_seed(seed)
    start = torch.randperm(r, generator=g)[:K].to(X.device)
    mu = X[:, start].clone()  # (B, K, c)
    for _ in range(5):  # Lloyd iterations for the initial split
        a = torch.cdist(X, mu).argmin(-1)
        R = torch.nn.functional.one_hot(a, K).double()
        mu = (R.transpose(1, 2) @ X) / R.sum(1).clamp(min=1).unsqueeze(-1)
    pi = R.mean(1)
    prev = math.inf
    it = 0
    for it in range(1, max_iter + 1):
        # M step: weighted covariance per component, closed-form PPCA
        Nk = R.sum(1).clamp(min=1e-9)  # (B, K)
        pi = Nk / r
        mu = (R.transpose(1, 2) @ X) / Nk.unsqueeze(-1)
        D = X.unsqueeze(1) - mu.unsqueeze(2)  # (B, K, r, c)
        S = (D * R.transpose(1, 2).unsqueeze(-1)).transpose(-1, -2) @ D / Nk[..., None, None]
        U, sigma2 = _pca(S, q)
        lam = torch.einsum("bkcq,bkcd,bkdq->bkq", U, S, U).clamp(min=0)
        # E step: responsibilities from the PPCA log-density (C = U diag(lam) U^T + sigma2 (I - U U^T))
        coef = torch.einsum("bkcq,bkrc->bkrq", U, D)
        resid = (D.pow(2).sum(-1) - coef.pow(2).sum(-1)).clamp(min=0)
        lam_c = torch.maximum(lam, sigma2.unsqueeze(-1))
        logp = -0.5 * ((coef.pow(2) / lam_c.unsqueeze(2)).sum(-1) + resid / sigma2.unsqueeze(-1)
                       + torch.log(lam_c).sum(-1, keepdim=True) + (c - q) * torch.log(sigma2).unsqueeze(-1))
        logp = logp + torch.log(pi.clamp(min=1e-12)).unsqueeze(-1)
        R = torch.softmax(logp, dim=1).transpose(1, 2)  # (B, r, K)
        err = float((resid / D.pow(2).sum(-1).clamp(min=1e-30) * R.transpose(1, 2)).sum(1).mean())
        if prev - err < tol * max(prev, 1e-30) and it > 1:
            prev = err
            break
        prev = err
    return MixtureTangents(U=U.to(torch.float32), mu=mu.to(torch.float32), assign=R.argmax(-1), iters=it,
                           recon_err=prev)
