"""Mixture-of-PPCA refinement: it recovers planes, stops on its tolerance, and plugs into MD."""

import pytest
import torch

from mdq_geoquant.md import md_rows
from mdq_geoquant.mppca import fit_mppca


def _two_planes(seed=0, n=60, c=20):
    g = torch.Generator().manual_seed(seed)
    bases = [torch.linalg.qr(torch.randn(c, 2, generator=g, dtype=torch.float64)).Q for _ in range(2)]
    centers = [torch.randn(c, generator=g, dtype=torch.float64) * 10 for _ in range(2)]
    X = torch.cat([centers[i] + torch.randn(n, 2, generator=g, dtype=torch.float64) @ bases[i].t()
                   + 1e-3 * torch.randn(n, c, generator=g, dtype=torch.float64) for i in range(2)])
    return X.float().unsqueeze(0), bases


def test_each_row_gets_the_plane_of_its_cluster():
    X, bases = _two_planes()
    T = fit_mppca(X, K=2, q=2)
    a = T.assign[0]
    assert len(set(a[:60].tolist())) == 1 and len(set(a[60:].tolist())) == 1 and a[0] != a[60]
    for i, rows in ((0, slice(0, 60)), (1, slice(60, 120))):
        inplane = (torch.randn(60, 2, dtype=torch.float64) @ bases[i].t()).float().unsqueeze(0)
        ns = T.normal_sq(inplane, torch.arange(120)[rows])
        assert float((ns / inplane.pow(2).sum(-1)).max()) < 1e-4
    assert 1 <= T.iters <= 20 and T.recon_err < 1e-3
    assert torch.allclose(T.normal(X).pow(2).sum(-1), T.normal_sq(X), rtol=1e-3, atol=1e-4)


def test_refined_md_is_defined_and_linear_in_the_error():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(128, 64, generator=g)
    e = 0.01 * torch.randn(128, 64, generator=g)
    one = md_rows(w, w + e, block_size=64, k=8, refine=True)
    two = md_rows(w, w + 2 * e, block_size=64, k=8, refine=True)
    assert bool(torch.isfinite(one.md).all()) and torch.allclose(two.md, 2 * one.md, rtol=1e-3)
    assert float(one.rank.float().mean()) == 8


def test_too_few_rows_for_the_mixture_is_refused():
    with pytest.raises(ValueError, match="cannot support"):
        fit_mppca(torch.randn(1, 20, 30), K=4, q=8)
    with pytest.raises(ValueError, match="q <"):
        fit_mppca(torch.randn(1, 200, 8), K=2, q=8)
