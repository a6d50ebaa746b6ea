"""Manifold distortion (mdq_geoquant.md) against an explicit, independent computation."""

import pytest
import torch

from mdq_geoquant.md import MDCalculator, layer_type, md_rows, row_normals
from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import tiny_llama


def _explicit_md(w, wq, k, var):
    """MD by the formula with U from an SVD of each row's neighbourhood (one block, float64)."""
    out = []
    for j in range(w.shape[0]):
        d = (w - w[j]).norm(dim=1)
        d[j] = -1
        nb = w[d.argsort()[:k + 1]]
        C = nb - nb.mean(0)
        _u, s, vh = torch.linalg.svd(C, full_matrices=False)
        frac = (s**2).cumsum(0) / (s**2).sum()
        r = int((frac - s**2 / (s**2).sum() < var - 1e-6).sum())
        U = vh[:r].t()
        P = torch.eye(w.shape[1], dtype=w.dtype) - U @ U.t()
        out.append(float((P @ (wq[j] - w[j])).norm() / (P @ w[j]).norm()))
    return torch.tensor(out)


def test_md_matches_the_formula_computed_explicitly():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 32, generator=g, dtype=torch.float64)
    wq = w + 0.05 * torch.randn(48, 32, generator=g, dtype=torch.float64)
    got = md_rows(w.float(), wq.float(), block_size=48, k=6, var=0.9).md
    assert torch.allclose(got, _explicit_md(w, wq, 6, 0.9), rtol=1e-3)


def test_md_is_zero_without_error_and_linear_in_the_error():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(64, 64, generator=g)
    e = 0.01 * torch.randn(64, 64, generator=g)
    assert float(md_rows(w, w, block_size=32, k=5).md.max()) == 0
    one = md_rows(w, w + e, block_size=32, k=5).md
    two = md_rows(w, w + 2 * e, block_size=32, k=5).md
    assert torch.allclose(two, 2 * one, rtol=1e-3)
    sub = md_rows(w, w + e, block_size=32, k=5, rows=torch.tensor([63, 2]))
    assert torch.allclose(sub.md, one[[2, 63]])  # rows come back sorted
    n = row_normals(w, torch.tensor([2, 63]), block_size=32, k=5)
    assert torch.allclose(n.norm(dim=1), sub.normal_norm, rtol=1e-4)


def test_a_row_inside_its_tangent_space_has_no_defined_md():
    w = torch.randn(32, 16, generator=torch.Generator().manual_seed(0)) + 5.0
    for j, c in ((5, 1e-3), (1, 2e-3), (2, 3e-3), (3, 4e-3)):  # four rows on one line through the origin
        w[j] = 0.0
        w[j, 0] = c
    with pytest.raises(ValueError, match="row 1 lies in its tangent space"):
        md_rows(w, w + 0.01, block_size=16, k=3)


def test_calculator_pre_and_post_per_layer_type():
    m = tiny_llama()
    calc = MDCalculator(block_size=32, k=8)
    pre = calc.compute(m)
    assert pre["mode"] == "pre" and set(pre["types"]) == {"attention", "mlp"}
    assert len(pre["layers"]) == 14 and all(v["md"] > 0 for v in pre["layers"].values())
    q = tiny_llama()
    quantize_model(q, QuantConfig(4, 32), RTN())
    post = calc.compute(q, reference=m)
    assert post["mode"] == "post"
    # RTN at the same bits / group is what "pre" simulates, except the calculator's group 128 vs 32
    att = MDCalculator(layer_type="attention", block_size=32, k=8, group_size=32).compute(m)
    assert att["layers"].keys() <= post["layers"].keys()
    for name, v in att["layers"].items():
        assert v["md"] == pytest.approx(post["layers"][name]["md"], rel=1e-2)
    with pytest.raises(ValueError, match="no linear layers"):
        MDCalculator().compute(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="block size 256 is larger"):
        MDCalculator(block_size=256).compute(m)
    with pytest.raises(ValueError, match="layer_type"):
        MDCalculator(layer_type="conv")


def test_layer_types():
    assert layer_type("model.layers.0.self_attn.q_proj") == "attention"
    assert layer_type("encoder.layer.0.attention.output.dense") == "attention"
    assert layer_type("encoder.layer.0.output.dense") == "mlp"
    assert layer_type("model.layers.3.mlp.down_proj") == "mlp"
    assert layer_type("lm_head") == "other"
