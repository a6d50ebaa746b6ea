"""Local tangent spaces and LLE weights (mdq_geoquant.tangent)."""

import pytest
import torch

from mdq_geoquant.tangent import check_weight, lle_weights, local_tangents, spans


def test_spans_fold_a_short_remainder():
    assert spans(576, 256, 16) == [(0, 256), (256, 512), (512, 576)]
    assert spans(520, 256, 16) == [(0, 256), (256, 520)]
    assert spans(100, 256, 16) == [(0, 100)]


def test_projection_is_orthogonal_and_idempotent_and_query_rows_match():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 40, 30, generator=g, dtype=torch.float64)
    E = torch.randn(3, 40, 30, generator=g, dtype=torch.float64)
    T = local_tangents(X, k=8, var=0.9)
    P = T.project(E)
    assert torch.allclose(T.project(P), P, atol=1e-10)
    assert float((P * (E - P)).sum(-1).abs().max()) < 1e-10
    assert torch.allclose(T.normal_sq(E), T.normal(E).pow(2).sum(-1), atol=1e-10)
    assert torch.allclose(T.mu + T.C[:, :, 0], X)  # each row is the first of its neighbourhood
    q = torch.tensor([0, 17, 39])
    Tq = local_tangents(X, k=8, var=0.9, query=q)
    assert torch.allclose(Tq.normal_sq(E[:, q]), T.normal_sq(E)[:, q])
    assert bool((T.rank >= 1).all()) and bool((T.rank <= 8).all())


def test_points_on_a_plane_have_that_plane_as_tangent():
    g = torch.Generator().manual_seed(1)
    basis = torch.linalg.qr(torch.randn(20, 2, generator=g, dtype=torch.float64)).Q  # a 2-D plane in R^20
    X = (torch.randn(60, 2, generator=g, dtype=torch.float64) @ basis.t()).unsqueeze(0)
    T = local_tangents(X, k=6, var=0.999)
    inplane = (torch.randn(60, 2, generator=g, dtype=torch.float64) @ basis.t()).unsqueeze(0)
    assert float(T.normal_sq(inplane).max()) < 1e-12  # an error inside the plane has no normal part
    off = torch.randn(1, 60, 20, generator=g, dtype=torch.float64)
    off = off - (off @ basis) @ basis.t()
    assert torch.allclose(T.normal_sq(off), off.pow(2).sum(-1))  # one orthogonal to it is all normal
    _idx, w, err = lle_weights(X, k=6, reg=1e-8)
    assert torch.allclose(w.sum(-1), torch.ones(1, 60, dtype=torch.float64))
    assert float(err.max()) < 1e-3  # points on a linear manifold are rebuilt from their neighbours


@pytest.mark.parametrize("w, k, m, match", [
    (torch.randn(10, 40), 15, 8, "needs at least 16 rows"),
    (torch.randn(40, 40), 5, 64, "block size 64 is larger than the layer"),
    (torch.randn(40, 40).index_fill_(0, torch.tensor([7]), 0.5), 5, 16, "constant .* first row 7"),
    (torch.randn(40, 40).index_fill_(1, torch.tensor([3]), float("nan")), 5, 16, "non-finite weight"),
    (torch.randn(40), 5, 16, "2-D weight"),
])
def test_bad_weights_are_refused_with_a_reason(w, k, m, match):
    with pytest.raises(ValueError, match=match):
        check_weight(w, "layer.x", k, m)
