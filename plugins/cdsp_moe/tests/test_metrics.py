"""Health metrics (issue #8)."""

from __future__ import annotations

import torch

from mdq_cdsp_moe import CDSPConfig, CDSPMoE
from mdq_cdsp_moe.metrics import expert_overlap, isolation_score, rank_overlap


def test_rank_overlap_disjoint_and_identical():
    layer = CDSPMoE(CDSPConfig(8, 16, 2, 4))
    with torch.no_grad():
        layer.alpha.zero_()
        layer.alpha[0, :4] = 1
        layer.alpha[1, 4:8] = 1
    assert rank_overlap(layer) == 0.0 and expert_overlap(layer).tolist() == [0.0, 0.0]
    with torch.no_grad():
        layer.alpha[1] = layer.alpha[0]
    assert rank_overlap(layer) == 1.0 and expert_overlap(layer).tolist() == [1.0, 1.0]


def test_isolation_score():
    layer = CDSPMoE(CDSPConfig(8, 16, 2, 4, n_tasks=2, task_ratio=1.0))
    x, task = torch.randn(10, 8), torch.tensor([0, 1] * 5)
    with torch.no_grad():
        layer.task_bias.copy_(torch.tensor([[9.0, -9.0], [-9.0, 9.0]]))
    # the normalized task bias caps a 2-expert gate at about 0.88 / 0.12 by design: isolation ~0.76
    assert isolation_score(layer, x, task) > 0.7
    with torch.no_grad():
        layer.task_bias.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert isolation_score(layer, x, task) < 1e-6
