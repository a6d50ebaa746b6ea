"""Layers that read the same input share one packed int4 form (issue #19: decode speed at one token per step)."""

import torch

from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.fuse import fuse_shared_inputs, shared_input_groups
from mdq_quantkit.io import save_quantized
from mdq_quantkit.models import load_any, tiny_llama
from mdq_quantkit.qlinear import QuantLinear


def _quantized(seed=0):
    m = tiny_llama(seed)  # hidden 64, 2 kv heads of 16, MLP 160: every layer fits the int4 kernel with groups of 32
    quantize_model(m, QuantConfig(4, 32), RTN())
    return m


def _logits(m, x):
    with torch.no_grad():
        return m(x, use_cache=False).logits


def test_q_k_v_and_gate_up_are_found_by_what_they_read():
    m = _quantized()
    expected = []
    for i in (0, 1):
        expected += [[f"model.layers.{i}.self_attn.{p}_proj" for p in "qkv"],
                     [f"model.layers.{i}.mlp.{p}_proj" for p in ("gate", "up")]]
    assert shared_input_groups(m) == expected


def test_sharing_changes_no_output_codes_or_saved_tensor():
    m = _quantized()
    x = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    before, state = _logits(m, x), {k: v.clone() for k, v in m.state_dict().items()}
    exact = _quantized()
    for q in exact.modules():
        if isinstance(q, QuantLinear):
            q.kernel_request = "torch"
            q.choose_kernel()
    fuse_shared_inputs(m)
    k = m.get_submodule("model.layers.0.self_attn.k_proj")
    assert k._shared is not None and k.qweight.numel() == 0
    after = _logits(m, x)
    assert float((after - before).norm() / before.norm()) < 1e-3  # the same kernel, the same arithmetic per output
    ref = _logits(exact, x)
    assert float((after - ref).norm() / ref.norm()) < 2e-2  # the torch path is the oracle (bfloat16 activations)
    saved = m.state_dict()
    assert saved.keys() == state.keys() and all(torch.equal(saved[n], state[n]) for n in state)
    with torch.no_grad():  # one token per step through the KV cache, where the sharing pays
        out = m.generate(x[:1, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False)
        unshared = _quantized().generate(x[:1, :4], max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (1, 9) and torch.equal(out, unshared)


def test_a_layer_taken_off_the_kernel_leaves_the_others_sharing():
    m = _quantized()
    x = torch.randint(0, 256, (1, 8), generator=torch.Generator().manual_seed(1))
    fuse_shared_inputs(m)
    before = _logits(m, x)
    q = m.get_submodule("model.layers.0.self_attn.q_proj")
    codes = q.codes()
    q.kernel_request = "torch"
    q.choose_kernel()
    assert q._shared is None and torch.equal(q.codes(), codes)
    assert m.get_submodule("model.layers.0.self_attn.v_proj")._shared is not None
    assert float((_logits(m, x) - before).norm() / before.norm()) < 2e-2


def test_load_any_shares_by_default(tmp_path):
    out = save_quantized(_quantized(), tmp_path / "q")
    shared = {n for n, q in load_any(out).named_modules() if isinstance(q, QuantLinear) and q._shared is not None}
    assert len(shared) == 10  # q, k, v, gate, up in each of two blocks; o and down read inputs of their own
    assert not any(isinstance(q, QuantLinear) and q._shared is not None for q in load_any(out, fuse=False).modules())
