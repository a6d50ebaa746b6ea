"""mdq-cdsp-moe as an mdq plugin (issue #8)."""

import torch

from mdq_cdsp_moe import CDSPMoE, plugin


def test_registers_projector_and_command(mdq_load_plugin):
    reg = mdq_load_plugin(plugin)
    layer = reg.get("moe_projector", "cdsp").obj(16, n_basis=32, k=4)
    assert isinstance(layer, CDSPMoE) and layer(torch.randn(2, 16), torch.zeros(2, dtype=torch.long)).shape == (2, 16)
    assert reg.names("command") == ["moe"]
