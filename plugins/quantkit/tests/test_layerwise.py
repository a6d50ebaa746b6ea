"""Block discovery, layer inputs (with and without stopping early) and sequential groups."""

import torch

from mdq_quantkit.layerwise import blocks_of, capture, layer_inputs, sequential_groups
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
