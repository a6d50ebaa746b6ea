import pytest
import torch

from mdq_quantkit import kernels
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.qlinear import QuantLinear
from mdq_quantkit.quant import rtn


def _layer(bits, in_f=576, out_f=80, g=128, bias=True):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(out_f, in_f, generator=gen)
    cfg = QuantConfig(bits, g)
    codes, s, z = rtn(w, cfg)
    return QuantLinear.from_codes(codes, s, z, cfg, torch.randn(out_f, generator=gen) if bias else None), w, codes


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_torch_path_matches_a_dense_linear(bits):
    q, w, codes = _layer(bits)
    assert q.kernel == "torch"  # on CPU at runtime the torch path is chosen
    assert torch.equal(q.codes(), codes)
    x = torch.randn(3, 5, 576)
    ref = torch.nn.functional.linear(x, q.dequantized(), q.bias)
    assert torch.allclose(q(x), ref, atol=1e-5)
    assert q.qweight.numel() * 4 <= w.numel() * bits / 8 + 4 * 80  # packed: bits/8 bytes per weight


@pytest.mark.parametrize("bits", [3, 4])
def test_triton_kernel_matches_the_torch_path(bits):
    q, _w, _ = _layer(bits)
    ref_w = q.dequantized()
    dq = kernels.dequant(q.qweight, q.scales, q.zeros, q.cfg, q.in_features)
    assert torch.equal(dq, ref_w)  # dequantized weights: exact
    x = torch.randn(37, 576)
    y = kernels.dequant_matmul(x, q.qweight, q.scales, q.zeros, q.cfg)
    ref = x @ ref_w.t()
    assert float((y - ref).norm() / ref.norm()) < 1e-3
    qt = QuantLinear.from_codes(q.codes(), q.scales.float(), q.zeros, q.cfg, q.bias, kernel="triton")
    assert qt.kernel == "triton" and torch.allclose(qt(x), q(x), rtol=1e-3, atol=1e-3)


def test_kernel_requests_that_cannot_run():
    q, _w, _ = _layer(8)
    with pytest.raises(RuntimeError, match="3- or 4-bit"):
        QuantLinear.from_codes(q.codes(), q.scales.float(), q.zeros, q.cfg, kernel="triton")
    with pytest.raises(ValueError, match="kernel must be"):
        QuantLinear(8, 8, QuantConfig(4, 8), kernel="cuda")


@pytest.mark.parametrize("kernel", ["torch", "triton"])
def test_kept_rows_replace_their_quantized_codes_on_both_paths(kernel):
    q, w, _ = _layer(4)
    rows = torch.tensor([3, 41])
    q.keep(rows, w[rows])
    dq = q.dequantized()
    assert torch.equal(dq[rows], w[rows].half().float())
    other = torch.ones(80, dtype=torch.bool)
    other[rows] = False
    assert not torch.allclose(dq[other], w[other], atol=1e-3)  # the rest stays quantized
    x = torch.randn(5, 576)
    qk = QuantLinear.from_codes(q.codes(), q.scales.float(), q.zeros, q.cfg, q.bias, kernel=kernel)
    qk.keep(rows, w[rows])
    assert torch.allclose(qk(x), torch.nn.functional.linear(x, dq, q.bias), rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="distinct ids"):
        q.keep(torch.tensor([3, 3]), w[[3, 3]])
    with pytest.raises(ValueError, match="shape"):
        q.keep(rows, w[rows, :10])
