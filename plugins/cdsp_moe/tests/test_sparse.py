"""Block-sparse inference equals the dense masked computation (issue #8)."""

from __future__ import annotations

import pytest
import torch

from mdq_cdsp_moe import CDSPConfig, CDSPMoE, SparseCDSP
from mdq_cdsp_moe.sparse import dense_reference


@pytest.mark.parametrize("k", [16, 8, 4])
@pytest.mark.parametrize("hard", [True, False])
def test_sparse_equals_dense(k, hard):
    torch.manual_seed(1)
    layer = CDSPMoE(CDSPConfig(32, 64, 4, k, n_tasks=2))
    with torch.no_grad():
        layer.alpha.normal_()  # trained-looking alpha: experts pick different dims
    x, task = torch.randn(257, 32), torch.randint(0, 2, (257,))
    sparse = SparseCDSP(layer)
    assert torch.allclose(sparse(x, task, hard_route=hard), dense_reference(layer, x, task, hard), atol=1e-5)
    assert torch.allclose(dense_reference(layer, x, task, hard), layer(x, task, hard_route=hard).detach(), atol=1e-5)
    assert sparse.flops_ratio() == k / 64
