"""The CDSP-MoE layer (issue #8)."""

from __future__ import annotations

import pytest
import torch

from mdq_cdsp_moe import CDSPConfig, CDSPMoE


def _layer(**kw) -> CDSPMoE:
    torch.manual_seed(0)
    return CDSPMoE(CDSPConfig(**{"d": 16, "n_basis": 64, "n_experts": 4, "k": 8, "n_tasks": 2, **kw}))


def test_output_equals_the_sum_over_experts():
    layer = _layer(activation="identity")
    x, task = torch.randn(5, 16), torch.tensor([0, 1, 0, 1, 1])
    g = layer.gates(x, task)
    m = torch.zeros(4, 64).scatter_(1, layer.picked(), 1.0)
    # y = x + sum_i g_i V^T diag(m_i) U^T x, literally
    expected = x + sum(g[:, i:i + 1] * ((x @ layer.U) * m[i]) @ layer.V for i in range(4))
    assert torch.allclose(layer(x, task), expected, atol=1e-6)


def test_rank_quota_each_expert_has_rank_at_most_k():
    layer = _layer(activation="identity")
    m = torch.zeros(4, 64).scatter_(1, layer.picked(), 1.0)
    for i in range(4):
        E_i = layer.U @ torch.diag(m[i]) @ layer.V                       # (d, d) linear map of expert i
        assert int(m[i].sum()) == 8 and torch.linalg.matrix_rank(E_i) <= 8


def test_backbone_is_orthogonal_at_init():
    layer = _layer()
    assert torch.allclose(layer.U @ layer.U.T, torch.eye(16), atol=1e-5)   # d < N: orthonormal rows
    assert torch.allclose(layer.V.T @ layer.V, torch.eye(16), atol=1e-5)


def test_straight_through_gives_alpha_a_gradient():
    layer = _layer()
    layer(torch.randn(8, 16), torch.zeros(8, dtype=torch.long)).pow(2).sum().backward()
    assert layer.alpha.grad is not None and layer.alpha.grad.abs().sum() > 0
    assert torch.equal(layer.masks().detach().sum(1), torch.full((4,), 8.0))  # forward stays hard


def test_task_bias_moves_the_gate():
    layer = _layer(task_ratio=1.0)
    x = torch.randn(4, 16)
    g0, g1 = layer.gates(x, torch.zeros(4, dtype=torch.long)), layer.gates(x, torch.ones(4, dtype=torch.long))
    assert not torch.allclose(g0, g1) and torch.allclose(g0[0], g0[1])  # ratio 1: only the task decides
    assert torch.allclose(layer.gates(x, torch.zeros(4, dtype=torch.long)).sum(-1), torch.ones(4))


def test_penalties_are_finite_and_in_range():
    met, det = _layer().alpha_penalties()
    assert 0 < met.item() < 1 and 0 <= det.item() <= 0.25


def test_works_on_sequences():
    layer = _layer()
    y = layer(torch.randn(2, 3, 16), torch.zeros(2, 3, dtype=torch.long))
    assert y.shape == (2, 3, 16)


@pytest.mark.parametrize("kw, fragment", [
    ({"k": 65}, "k must be in \\[1, n_basis=64\\]"), ({"k": 0}, "k must be in"), ({"n_experts": 0}, "n_experts must be >= 1"),
    ({"task_ratio": 1.5}, "task_ratio"), ({"activation": "tanhh"}, "activation must be one of"),
])
def test_bad_config(kw, fragment):
    with pytest.raises(ValueError, match=fragment):
        _layer(**kw)


@pytest.mark.parametrize("x, task, fragment", [
    (torch.randn(3, 15), torch.zeros(3, dtype=torch.long), "width d=16"),
    (torch.randn(3, 16), torch.tensor([0, 1, 2]), "task id 2 is outside the configured tasks 0..1"),
    (torch.randn(3, 16), torch.tensor([0, -1, 0]), "task id -1"),
    (torch.randn(3, 16), torch.zeros(2, dtype=torch.long), "task must have shape"),
])
def test_bad_inputs(x, task, fragment):
    with pytest.raises(ValueError, match=fragment):
        _layer()(x, task)
