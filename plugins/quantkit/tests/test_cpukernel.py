"""The int4 CPU kernel wrapper (issue #19): column ranges, exact code recovery, the matmul against the reference."""

import pytest
import torch

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.cpukernel import Int4Pack, parts_for, usable
from mdq_quantkit.quant import dequantize, rtn


def test_a_short_last_group_gets_its_own_column_range():
    assert parts_for(576, 128) == [(0, 512, 128), (512, 576, 64)]
    assert parts_for(1536, 128) == [(0, 1536, 128)]
    assert parts_for(576, 64) == [(0, 576, 64)]
    assert parts_for(100, 64) is None  # a 36-column tail is no group size the kernel takes
    assert parts_for(64, 16) is None
    assert usable(96, 576, 128, 4) and not usable(40, 576, 128, 4) and not usable(96, 576, 128, 3)


@pytest.mark.parametrize("in_f,g", [(576, 128), (256, 32), (512, 256)])
def test_codes_are_recovered_exactly_and_the_product_matches_the_reference(in_f, g):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(48, in_f, generator=gen)
    cfg = QuantConfig(4, g)
    codes, s, z = rtn(w, cfg)
    p = Int4Pack(codes, s.half(), z.to(torch.uint8), g)
    assert torch.equal(p.codes(), codes)
    x = torch.randn(9, in_f, generator=gen)
    ref = x @ dequantize(codes, s.half(), z, cfg).t()
    assert float((p.matmul(x) - ref).norm() / ref.norm()) < 1e-2  # bfloat16 activations and scales
    assert p.nbytes() < codes.numel()  # half a byte per weight plus the group table


def test_layouts_it_cannot_take_are_refused():
    with pytest.raises(ValueError, match="cannot take a \\(40, 576\\) layer"):
        Int4Pack(torch.zeros(40, 576, dtype=torch.long), torch.ones(40, 5), torch.zeros(40, 5), 128)
