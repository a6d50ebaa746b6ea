import pytest
import torch

from mdq_quantkit import kernels
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.qlinear import QuantLinear
from mdq_quantkit.quant import rtn


def _layer(bits, in_f=576, out_f=80, g=128, bias=True, kernel="torch"):
    gen = torch.Generator().manual_seed(bits)
    w = torch.randn(out_f, in_f, generator=gen)
    cfg = QuantConfig(bits, g)
    codes, s, z = rtn(w, cfg)
    bias_t = torch.randn(out_f, generator=gen) if bias else None
    return QuantLinear.from_codes(codes, s, z, cfg, bias_t, kernel=kernel), w, codes


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_torch_path_matches_a_dense_linear(bits):
    q, w, codes = _layer(bits)
    assert q.kernel == "torch"
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


@pytest.mark.parametrize("in_f,g", [(576, 128), (576, 64), (1536, 128), (96, 32)])
def test_int4_cpu_kernel_keeps_one_packed_copy_and_matches_the_torch_path(in_f, g):
    # 576 = 4 x 128 + 64: the short last group runs in the same call, as groups of 64 (issue #19)
    ref, w, codes = _layer(4, in_f=in_f, out_f=96, g=g)
    q = QuantLinear.from_codes(codes, ref.scales.float(), ref.zeros, ref.cfg, ref.bias)
    assert q.kernel == "int4"  # chosen automatically for 4-bit layers on CPU
    x = torch.randn(2, 7, in_f)
    y, y_ref = q(x), ref(x)
    assert float((y - y_ref).norm() / y_ref.norm()) < 1e-2  # bfloat16 activations and scales
    assert q.qweight.numel() == 0  # the bit stream was released once the kernel's packed form existed
    assert torch.equal(q.codes(), codes)  # ... and is recovered exactly
    assert torch.equal(q.state_dict()["qweight"], ref.qweight)
    assert torch.equal(q.dequantized(), ref.dequantized())
    q2 = QuantLinear(in_f, 96, ref.cfg, bias=True)
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2.codes(), codes)


def test_int4_kernel_refuses_what_it_cannot_take_and_auto_falls_back():
    q, _w, codes = _layer(4, in_f=576, out_f=40, g=128)  # 40 rows: not divisible by 16
    assert QuantLinear.from_codes(codes, q.scales.float(), q.zeros, q.cfg).kernel == "torch"
    with pytest.raises(RuntimeError, match="int4 CPU kernel"):
        QuantLinear.from_codes(codes, q.scales.float(), q.zeros, q.cfg, kernel="int4")
    q3, _w, c3 = _layer(3, in_f=576, out_f=96, g=128)
    assert QuantLinear.from_codes(c3, q3.scales.float(), q3.zeros, q3.cfg).kernel == "torch"


@pytest.mark.parametrize("kernel", ["torch", "int4"])
def test_input_permutation_of_act_order_checkpoints(kernel):
    ref, w, codes = _layer(4, in_f=256, out_f=32, g=64, bias=False)
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(3))
    # stored column j holds input feature perm[j]
    q = QuantLinear.from_codes(codes, ref.scales.float(), ref.zeros, ref.cfg, kernel=kernel, in_perm=perm)
    x = torch.randn(5, 256)
    w_feat = torch.empty_like(ref.dequantized())
    w_feat[:, perm] = ref.dequantized()
    assert torch.equal(q.dequantized(), w_feat)
    y, ref_y = q(x), x @ w_feat.t()
    assert float((y - ref_y).norm() / ref_y.norm()) < (1e-5 if kernel == "torch" else 1e-2)


@pytest.mark.parametrize("kernel", ["torch", "int4", "triton"])
def test_kept_columns_add_to_a_packed_product_that_is_zero_there(kernel):
    ref, w, codes = _layer(4, in_f=576, out_f=96, g=128)
    cols = torch.tensor([5, 130, 575])
    vals = torch.randn(96, 3)
    q = QuantLinear.from_codes(codes, ref.scales.float(), ref.zeros, ref.cfg, ref.bias, kernel=kernel)
    q.keep_columns(cols, vals)
    assert torch.equal(q.codes()[:, cols], ref.zeros.long()[:, cols // 128])  # re-coded to the zero point
    want = ref.dequantized()
    want[:, cols] = vals.half().float()
    assert torch.equal(q.dequantized(), want)
    x = torch.randn(4, 576)
    y, y_ref = q(x), torch.nn.functional.linear(x, want, ref.bias)
    assert float((y - y_ref).norm() / y_ref.norm()) < (1e-5 if kernel == "torch" else 1e-2)
    q2 = QuantLinear(576, 96, ref.cfg, bias=True)
    q2.load_state_dict(q.state_dict())
    q2.check_kept_columns("layer")
    assert torch.equal(q2.dequantized(), want)
    with pytest.raises(ValueError, match="distinct ids"):
        q.keep_columns(torch.tensor([576]), vals[:, :1])
    with pytest.raises(ValueError, match="shape"):
        q.keep_columns(cols, vals[:10])
    sd = q.state_dict()
    bad = QuantLinear.from_codes(codes, ref.scales.float(), ref.zeros, ref.cfg, ref.bias, kernel="torch")
    bad.keep_cols, bad.keep_colvals = sd["keep_cols"], sd["keep_colvals"]  # the codes there were never zeroed
    with pytest.raises(ValueError, match="layer 7: the codes of the kept columns are not their group's zero point"):
        bad.check_kept_columns("layer 7")
