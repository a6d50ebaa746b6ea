import pytest
import torch

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.quant import check_finite, dequantize, group_params, rtn


def test_rtn_error_is_within_a_step_and_half_a_step_inside_the_range():
    w = torch.randn(16, 200, generator=torch.Generator().manual_seed(0))
    for cfg in (QuantConfig(4, 64), QuantConfig(3, 64, sym=True), QuantConfig(8, -1), QuantConfig(2, 128)):
        codes, scales, zeros = rtn(w, cfg)
        assert scales.shape == (16, cfg.groups(200)) and int(codes.max()) <= cfg.maxq and int(codes.min()) >= 0
        err = (dequantize(codes, scales, zeros, cfg) - w).abs()
        gidx = torch.arange(200) // cfg.group(200)
        step = scales[:, gidx]
        # scales are rounded to fp16 and the symmetric grid is one code short on the positive side, so
        # only the extreme values may round by more than half a step; never by a whole one
        assert bool((err <= step + 1e-6).all()) and float((err <= step / 2 + 1e-6).float().mean()) > 0.97


def test_symmetric_zero_is_the_middle_and_constant_rows_are_handled():
    s, z = group_params(torch.zeros(3, 8), QuantConfig(4, 8, sym=True))
    assert torch.all(z == 8) and torch.all(s > 0)


def test_clipping_bounds_the_range():
    w = torch.tensor([[0.1, -0.2, 5.0, 0.3]])
    codes, scales, zeros = rtn(w, QuantConfig(4, 4), clip=torch.tensor([[0.5]]))
    assert float(dequantize(codes, scales, zeros, QuantConfig(4, 4)).max()) <= 0.5 + float(scales.max())


def test_nan_weights_are_refused():
    w = torch.ones(2, 2)
    w[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"layer x has a non-finite weight at index \[1, 0\]"):
        check_finite(w, "layer x")
