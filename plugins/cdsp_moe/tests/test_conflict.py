"""Gradient-conflict detection and feedback (issue #8)."""

from __future__ import annotations

import torch

from mdq_cdsp_moe import CDSPConfig, CDSPMoE
from mdq_cdsp_moe.conflict import basis_gradients, detect_and_feed_back


def test_opposite_targets_conflict_and_alpha_moves():
    torch.manual_seed(0)
    layer = CDSPMoE(CDSPConfig(8, 16, 2, 16, n_tasks=2, task_ratio=1.0, activation="identity"))
    with torch.no_grad():
        layer.task_bias.copy_(torch.tensor([[5.0, -5.0], [-5.0, 5.0]]))  # task t routes to expert t
    x = torch.rand(64, 8) + 0.5                # positive inputs: each basis dim's activation keeps one sign
    task = torch.tensor([0, 1] * 32)
    y = layer(x, task)
    la = -y[task == 0].mean()                  # task 0 wants the outputs up
    lb = y[task == 1].mean()                   # task 1 wants the same outputs down
    before = layer.alpha.detach().clone()
    rep = detect_and_feed_back(layer, la, lb, x, task)
    assert rep.shared == 16 and rep.conflicts > 0 and rep.moved == rep.conflicts
    assert 0 < rep.interference <= 1 and (layer.alpha < before).any()


def test_agreeing_tasks_do_not_conflict():
    torch.manual_seed(0)
    layer = CDSPMoE(CDSPConfig(8, 16, 2, 16, n_tasks=2, task_ratio=1.0, activation="identity"))
    x = torch.rand(64, 8) + 0.5
    task = torch.tensor([0, 1] * 32)
    y = layer(x, task)
    la = -y[task == 0].mean()
    lb = -y[task == 1].mean()                  # both want the outputs up
    rep = detect_and_feed_back(layer, la, lb, x, task)
    assert rep.shared == 16 and rep.conflicts == 0 and rep.moved == 0


def test_basis_gradients_shape():
    layer = CDSPMoE(CDSPConfig(8, 16, 2, 4))
    g = basis_gradients(layer, layer(torch.randn(4, 8), torch.zeros(4, dtype=torch.long)).sum())
    assert g.shape == (16, 16)
