"""Block discovery, layer inputs (with and without stopping early), sequential groups and the inline pass."""

import pytest
import torch

from mdq_quantkit.layerwise import (
    batchable, blocks_of, calibration_dtype, capture, forward_all, gram, inline_pass, joined, layer_inputs, linears_of, sequential_groups,
    set_weight, split_batches,
)
from mdq_quantkit.models import tiny_gpt2, tiny_llama

X = [torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(i)) for i in range(2)]


def test_sequential_groups_follow_shared_inputs_in_forward_order():
    m = tiny_llama()
    _, blocks = blocks_of(m)
    inputs, kw = capture(m, X)
    assert sequential_groups(blocks[0], inputs[0], kw) == [
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
        ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]
    g = tiny_gpt2()
    _, gblocks = blocks_of(g)
    ginputs, gkw = capture(g, X)
    assert sequential_groups(gblocks[0], ginputs[0], gkw) == [["attn.c_attn"], ["attn.c_proj"], ["mlp.c_fc"],
                                                             ["mlp.c_proj"]]


def test_stopping_early_sees_the_same_layer_inputs_and_skips_the_rest():
    m = tiny_llama()
    _, blocks = blocks_of(m)
    inputs, kw = capture(m, X)
    full, early, calls = {}, {}, []
    layer_inputs(blocks[0], ["self_attn.o_proj"], inputs, kw, lambda n, x: full.setdefault(n, []).append(x))
    hook = blocks[0].mlp.down_proj.register_forward_pre_hook(lambda *_: calls.append(1))
    layer_inputs(blocks[0], ["self_attn.o_proj"], inputs, kw, lambda n, x: early.setdefault(n, []).append(x),
                 stop=True)
    hook.remove()
    assert calls == []  # the MLP never ran
    assert all(torch.equal(a, b) for a, b in zip(full["self_attn.o_proj"], early["self_attn.o_proj"], strict=True))


def _first_block():
    m = tiny_llama()
    _, blocks = blocks_of(m)
    inputs, kw = capture(m, X)
    return blocks[0], inputs, kw, sequential_groups(blocks[0], inputs[0], kw)


def _layer_xtx(block, names, inputs, kw):
    acc = {}
    layer_inputs(block, names, inputs, kw, lambda n, x: acc.__setitem__(n, acc.get(n, 0) + x.t() @ x))
    return acc


def test_inline_pass_outputs_and_sums_match_separate_forwards():
    b, inputs, kw, groups = _first_block()
    expect_out = forward_all(b, inputs, kw)
    expect = _layer_xtx(b, [g[0] for g in groups], inputs, kw)
    threads = torch.get_num_threads()
    got = {}
    out = inline_pass(b, groups, inputs, kw, lambda gi, h, t: got.__setitem__(groups[gi][0], (h.clone(), t)))
    assert torch.get_num_threads() == threads
    assert all(torch.allclose(a, e, atol=1e-5) for a, e in zip(out, expect_out, strict=True))
    for name, (h, t) in got.items():
        assert t == sum(x.shape[1] for x in inputs)
        assert torch.allclose(h, expect[name], rtol=1e-4, atol=1e-3)


def test_inline_pass_later_groups_see_the_earlier_groups_changes():
    b, inputs, kw, groups = _first_block()
    lin = linears_of(b)
    new_o = torch.randn_like(lin["self_attn.o_proj"].weight)
    got = {}

    def on_group(gi, h, t):
        got[gi] = h.clone()
        if groups[gi] == ["self_attn.o_proj"]:
            set_weight(lin["self_attn.o_proj"], new_o)  # as a quantizer would, mid-forward

    out = inline_pass(b, groups, inputs, kw, on_group)
    expect = _layer_xtx(b, ["mlp.gate_proj"], inputs, kw)  # now with the new o_proj from the start
    assert torch.allclose(got[2], expect["mlp.gate_proj"], rtol=1e-4, atol=1e-3)
    assert all(torch.allclose(a, e, atol=1e-5) for a, e in zip(out, forward_all(b, inputs, kw), strict=True))


class _Branchy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def forward(self, x):
        y = self.a(x)
        return self.b(y) if float(x.sum()) > 0 else y


def test_inline_pass_an_input_that_skips_a_group_arrives_empty():
    blk = _Branchy()
    xs = [torch.ones(1, 3, 4), -torch.ones(1, 5, 4)]
    seen = []
    inline_pass(blk, [["a"], ["b"]], xs, {}, lambda gi, h, t: seen.append((gi, t)))
    assert seen == [(0, 8), (1, 3)]


def test_inline_pass_failures_are_raised_without_hanging():
    blk = _Branchy()
    xs = [torch.ones(1, 3, 4), torch.ones(1, 2, 4)]

    def boom(gi, h, t):
        raise RuntimeError("quantizer failed")

    with pytest.raises(RuntimeError, match="quantizer failed"):
        inline_pass(blk, [["a"], ["b"]], xs, {}, boom)
    hook = blk.b.register_forward_hook(lambda *_: (_ for _ in ()).throw(ValueError("layer b broke")))
    with pytest.raises(ValueError, match="layer b broke"):
        inline_pass(blk, [["a"], ["b"]], xs, {}, lambda *_: None)
    hook.remove()
    assert not blk.a._forward_pre_hooks and not blk.b._forward_pre_hooks  # the pass removed its hooks


@pytest.mark.parametrize("n,width", [(7, 512), (576, 512), (1536, 512), (10, 3)])
def test_gram_is_x_transpose_x(n, width):
    x = torch.randn(33, n, generator=torch.Generator().manual_seed(n))
    assert torch.allclose(gram(x, width), x.t() @ x, rtol=1e-5, atol=1e-4)


class _Swapped(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.a(self.b(x)) if float(x.sum()) > 0 else self.b(self.a(x))


def test_inline_pass_refuses_layers_whose_order_differs_by_input():
    with pytest.raises(ValueError, match="layer 'b' was reached after 'a' by one input but before it by another"):
        inline_pass(_Swapped(), [["b"], ["a"]], [torch.ones(1, 2, 4), -torch.ones(1, 2, 4)], {}, lambda *_: None,
                    batch=False)  # a block that branches on a whole input's values runs one input per thread


def test_batched_pass_matches_one_input_per_thread():
    b, _, kw, groups = _first_block()
    m = tiny_llama()
    xs = [torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(10 + i)) for i in range(5)]
    inputs, kw = capture(m, xs)
    assert batchable(inputs, kw)
    runs = {}
    for batch in (True, False):
        got = {}
        out = inline_pass(b, groups, inputs, kw, lambda gi, h, t, got=got: got.__setitem__(gi, (h.clone(), t)),
                          batch=batch)
        runs[batch] = (out, got)
    (out_b, got_b), (out_s, got_s) = runs[True], runs[False]
    assert [o.shape for o in out_b] == [x.shape for x in inputs]  # one output per input, as before
    assert all(torch.allclose(a, e, atol=1e-5) for a, e in zip(out_b, out_s, strict=True))
    for gi in got_s:
        assert got_b[gi][1] == got_s[gi][1] == 5 * 16
        assert torch.allclose(got_b[gi][0], got_s[gi][0], rtol=1e-4, atol=1e-3)


def test_batchable_only_same_shapes_and_keyword_tensors_that_broadcast():
    x = [torch.ones(1, 4, 8), torch.ones(1, 4, 8)]
    assert batchable(x, {"position_embeddings": (torch.ones(1, 4, 2), torch.ones(1, 4, 2)), "flag": True})
    assert not batchable([torch.ones(1, 4, 8), torch.ones(1, 5, 8)], {})  # lengths differ
    assert not batchable(x, {"alibi": torch.ones(3, 1, 4)})  # tied to a batch of one: keep one input per thread
    assert not batchable(x[:1], {})


def test_split_batches_and_joined_round_trip_without_a_copy():
    assert split_batches(5, 2) == [range(0, 2), range(2, 5)]
    assert split_batches(2, 8) == [range(0, 1), range(1, 2)]
    base = torch.randn(4, 3, 2)  # not itself a view
    parts = list(torch.split(base, [1, 1, 2]))
    assert joined(parts) is base  # consecutive views of one tensor: its base back
    assert torch.equal(joined(parts[1:]), base[1:])  # not the whole base: a copy
    assert torch.equal(joined([parts[1], parts[0]]), torch.cat([parts[1], parts[0]]))  # out of order: a copy


def test_calibration_dtype_names_and_auto(monkeypatch):
    assert calibration_dtype("float32") is None and calibration_dtype("bfloat16") is torch.bfloat16
    assert calibration_dtype("auto", "cuda") is torch.bfloat16
    for avx512_bf16, amx, want in ((True, False, torch.bfloat16), (False, True, torch.bfloat16), (False, False, None)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert calibration_dtype("auto") is want
    with pytest.raises(ValueError, match="float32, bfloat16 or auto"):
        calibration_dtype("fp16")


def test_autocast_pass_multiplies_in_bfloat16_and_hands_over_float32_sums():
    b, inputs, kw, groups = _first_block()
    seen = []
    hook = b.mlp.down_proj.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    sums = {}
    out = inline_pass(b, groups, inputs, kw, lambda gi, h, t: sums.__setitem__(gi, h.dtype), autocast=torch.bfloat16)
    hook.remove()
    assert set(seen) == {torch.bfloat16} and set(sums.values()) == {torch.float32}
    ref = forward_all(b, inputs, kw)
    assert all(torch.allclose(a.float(), e, atol=0.05, rtol=0.05) for a, e in zip(out, ref, strict=True))
    assert not all(torch.equal(a, e) for a, e in zip(out, ref, strict=True))


class _TwoStep(torch.nn.Module):
    def __init__(self, k: int = 4, h: int = 7) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(k, h), torch.nn.Linear(h, k)

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("autocast, copied, gi, width", [
    # float16: b's inputs arrive in float16 (a's output) and are copied to float32 for the Gram
    (torch.float16, torch.float32, 1, 7),
    # bfloat16: a's inputs arrive in float32 and are copied to bfloat16 for the Gram
    (torch.bfloat16, torch.bfloat16, 0, 4),
])
def test_inline_pass_under_autocast_holds_no_gram_copies_while_a_group_is_quantized(autocast, copied, gi, width):
    import gc

    blk = _TwoStep()
    xs = [torch.randn(1, 5, 4, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    held = {}

    def on_group(g, h, t):
        # the copies taken for the Hessian must be gone before the waiting inputs block here
        held[g] = [o for o in gc.get_objects() if type(o) is torch.Tensor and o.dtype == copied
                   and o.dim() == 2 and o.shape[-1] == width and o.shape[0] % 5 == 0]

    inline_pass(blk, [["a"], ["b"]], xs, {}, on_group, autocast=autocast)
    assert set(held) == {0, 1} and held[gi] == []


@pytest.mark.parametrize("k", [4, 300])  # 300: wider than one block of `gram`
def test_autocast_pass_takes_the_grams_in_bfloat16_under_bfloat16_and_in_float32_otherwise(k):
    xs = [torch.randn(1, 5, k, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    got = {}
    for dt in (torch.bfloat16, torch.float16, None):
        sums = {}
        inline_pass(_TwoStep(k), [["a"], ["b"]], xs, {}, lambda gi, h, t: sums.__setitem__(gi, h), batch=False,
                    autocast=dt)
        got[dt] = sums[0]
    flat = [x.reshape(-1, k) for x in xs]
    bf16 = sum(gram(x.bfloat16()).double() for x in flat).float()
    f32 = sum(gram(x).double() for x in flat).float()
    assert torch.equal(got[torch.bfloat16], bf16) and not torch.equal(bf16, f32)
    # float16's range ends at 65504: its sums of squares would overflow, so it keeps float32's
    assert torch.equal(got[torch.float16], f32) and torch.equal(got[None], f32)


def test_autocast_float16_pass_keeps_large_grams_finite():
    xs = [300 * torch.randn(1, 5, 4, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    sums = {}
    inline_pass(_TwoStep(), [["a"], ["b"]], xs, {}, lambda gi, h, t: sums.__setitem__(gi, h), batch=False,
                autocast=torch.float16)
    assert float(sums[0].abs().max()) > 65504 and bool(torch.isfinite(sums[0]).all())
