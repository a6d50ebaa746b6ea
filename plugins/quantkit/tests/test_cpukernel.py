"""The int4 CPU kernel wrapper (issue #19): the kernel's group, exact code recovery, the matmul against the
reference, and one call for the layers that read the same input."""

import pytest
import torch

from mdq_quantkit.config import QuantConfig
from mdq_quantkit.cpukernel import Int4Pack, SharedInput, kernel_group, usable
from mdq_quantkit.quant import dequantize, rtn


def test_a_short_last_group_runs_as_smaller_groups_in_one_call():
    assert kernel_group(576, 128) == 64  # 4 x 128 + 64 = 9 x 64, each 128-group's scale used twice
    assert kernel_group(1536, 128) == 128
    assert kernel_group(576, 64) == 64
    assert kernel_group(576, 576) == 64  # one group per row
    assert kernel_group(100, 64) is None  # a 36-column tail is no group size the kernel takes
    assert kernel_group(64, 16) is None
    assert usable(96, 576, 128, 4) and not usable(40, 576, 128, 4) and not usable(96, 576, 128, 3)


@pytest.mark.parametrize("in_f,g", [(576, 128), (256, 32), (512, 256), (576, 576), (320, 96)])
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


def _members(gen, in_f=576, g=128, rows=(96, 32, 32)):
    cfg = QuantConfig(4, g)
    out = []
    for n in rows:
        codes, s, z = rtn(torch.randn(n, in_f, generator=gen), cfg)
        out.append((codes, s.half(), z.to(torch.uint8)))
    return cfg, out


def test_layers_sharing_an_input_get_their_rows_of_one_product():
    gen = torch.Generator().manual_seed(1)
    cfg, members = _members(gen)
    shared = SharedInput([c for c, _, _ in members], [s for _, s, _ in members], [z for *_, z in members], 128)
    assert shared.ranges == [(0, 96), (96, 128), (128, 160)]
    calls = []
    inner = shared.pack.matmul_bf16
    shared.pack.matmul_bf16 = lambda xb: calls.append(1) or inner(xb)
    x = torch.randn(2, 3, 576, generator=gen)
    flat = x.reshape(-1, 576)
    for i, (codes, s, z) in enumerate(members):
        y = shared.output(i, x, flat, torch.float32)
        ref = flat @ dequantize(codes, s, z, cfg).t()
        assert y.dtype == torch.float32 and y.is_contiguous()
        assert float((y - ref).norm() / ref.norm()) < 1e-2  # bfloat16 activations and scales
        assert torch.equal(shared.codes(i), codes)
    assert len(calls) == 1  # one kernel call served all three
    shared.output(0, x, flat, torch.float32)
    shared.output(0, x, flat, torch.float32)  # the same layer twice: computed again, not served stale
    assert len(calls) == 3
    shared.output(1, x.clone(), flat, torch.float32)  # another tensor object
    assert len(calls) == 4
    x2 = torch.randn(1, 576, generator=gen)
    shared.output(0, x2, x2, torch.float32)
    x2.mul_(2)  # modified in place after layer 0 saw it: layer 1 must see the new values
    y1 = shared.output(1, x2, x2, torch.float32)
    ref1 = x2 @ dequantize(*members[1], cfg).t()
    assert len(calls) == 6 and float((y1 - ref1).norm() / ref1.norm()) < 1e-2


def test_an_inference_mode_input_is_matched_by_object():
    gen = torch.Generator().manual_seed(2)
    _cfg, members = _members(gen, in_f=256, g=64, rows=(32, 16))
    shared = SharedInput([c for c, _, _ in members], [s for _, s, _ in members], [z for *_, z in members], 64)
    with torch.inference_mode():
        x = torch.randn(1, 256)
        a = shared.output(0, x, x, torch.float32)
        b = shared.output(1, x, x, torch.float32)
    assert a.shape == (1, 32) and b.shape == (1, 16)
