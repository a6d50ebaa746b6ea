"""The membership probe: padded records, code lengths, MIA AUC, encoding bits, and one row's effects."""

import math

import pytest
import torch

from mdq_geoquant.privacy import make_secrets
from mdq_geoquant.probe import BlockCache, MembershipProbe, row_effects
from mdq_quantkit.models import tiny_gpt2, tiny_llama


def test_twins_differ_only_in_a_fresh_id(char_tok):
    secrets = make_secrets(3)
    p = MembershipProbe.from_secrets(char_tok, secrets, twins=2)
    assert p.ids.shape[0] == 3 * 3 and (p.members, p.twins) == (3, 2)
    texts = ["".join(chr(int(i)) for i in row if int(i)) for row in p.ids]
    twins = texts[3:]
    assert texts[:3] == [s.text for s in secrets]
    assert all(t.startswith(secrets[i // 2].prefix) and t.endswith(secrets[i // 2].suffix) for i, t in enumerate(twins))
    assert not {t[len(secrets[i // 2].prefix):][:6] for i, t in enumerate(twins)} & {s.secret for s in secrets}
    first = int(p.scored[0].nonzero().min())
    assert first == len(secrets[0].prefix) - 2  # the prediction of the prefix's last character, one early
    with pytest.raises(ValueError, match="at least one twin"):
        MembershipProbe.from_secrets(char_tok, secrets, twins=0)
    with pytest.raises(ValueError, match="at least one planted record"):
        MembershipProbe.from_secrets(char_tok, [], twins=1)


def test_code_lengths_ignore_padding(char_tok):
    m = tiny_llama()
    p = MembershipProbe.from_secrets(char_tok, make_secrets(3), twins=1)
    bits = p.code_lengths(m, batch=2)
    for i in range(p.ids.shape[0]):
        cols = p.scored[i].nonzero().flatten()
        ids = p.ids[i:i + 1, :int(cols.max()) + 2]  # this record alone, unpadded
        with torch.no_grad():
            lp = torch.log_softmax(m(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
        assert float(bits[i]) == pytest.approx(float(-lp[cols].sum()) / math.log(2), rel=1e-4)


def test_auc_and_encoding_bits():
    p = MembershipProbe(torch.zeros(6, 2, dtype=torch.long), torch.ones(6, 1, dtype=torch.bool), 2, 2)
    assert p.auc(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])) == 1.0  # members always shorter
    assert p.auc(torch.tensor([9.0, 9.0, 1.0, 1.0, 1.0, 1.0])) == 0.0
    assert p.auc(torch.tensor([2.0, 2.0, 2.0, 2.0, 2.0, 2.0])) == 0.5
    before = torch.zeros(6)
    after = torch.tensor([3.0, 1.0, 1.0, 2.0, 0.0, 0.0])  # member 0 +3 vs twins +1.5; member 1 +1 vs 0
    assert p.encoding_bits(before, after) == pytest.approx(2.5)


@pytest.mark.parametrize("make,name", [(tiny_llama, "model.layers.0.mlp.down_proj"), (tiny_gpt2, "transformer.h.0.mlp.c_proj")])
def test_row_effects_measure_one_row_and_restore_it(char_tok, make, name):
    m = make()
    p = MembershipProbe.from_secrets(char_tok, make_secrets(2), twins=2)
    layer = m.get_submodule(name)
    from mdq_geoquant.md import weight

    w = weight(layer)
    saved = layer.weight.detach().clone()
    wq = w.clone()
    wq[3] += 0.5
    bits, dauc = row_effects(m, p, layer, torch.tensor([1, 3]), wq)
    assert torch.equal(layer.weight, saved)
    assert float(bits[0]) == 0 and float(dauc[0]) == 0  # row 1 unchanged in wq
    base = p.code_lengths(m)
    with torch.no_grad():
        if name.startswith("transformer"):
            layer.weight[:, 3] = wq[3]
        else:
            layer.weight[3] = wq[3]
    after = p.code_lengths(m)
    assert float(bits[1]) == pytest.approx(p.encoding_bits(base, after), rel=1e-4, abs=1e-5)
    assert float(dauc[1]) == pytest.approx(p.auc(base) - p.auc(after))


class _Capped(torch.nn.Module):
    """A causal LM whose logits are changed after the head (as soft-capping does)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_llama()
        self.base_model = self.inner.model

    def get_output_embeddings(self):
        return self.inner.lm_head

    def forward(self, ids, use_cache=False):
        out = self.inner(ids, use_cache=use_cache)
        out.logits = 3.0 * torch.tanh(out.logits / 3.0)
        return out


def test_code_lengths_take_the_full_forward_when_the_head_alone_is_not_the_logits(char_tok):
    p = MembershipProbe.from_secrets(char_tok, make_secrets(2), twins=1)
    m = _Capped()
    for _ in range(2):  # the first call checks the shortcut, the second uses what it found
        bits = p.code_lengths(m)
        with torch.no_grad():
            logits = m(p.ids).logits[:, :-1]
        nll = -torch.log_softmax(logits, -1).gather(-1, p.ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        assert torch.allclose(bits, (nll * p.scored).sum(1) / math.log(2), rtol=1e-4)


@pytest.mark.parametrize("make,name", [(tiny_llama, "model.layers.1.self_attn.v_proj"), (tiny_gpt2, "transformer.h.1.attn.c_attn")])
def test_block_cache_reruns_from_the_changed_block_and_equals_the_full_forward(char_tok, make, name):
    # issue #20: the probe re-runs only the blocks from the changed one onward
    m = make()
    p = MembershipProbe.from_secrets(char_tok, make_secrets(3), twins=2)
    cache = BlockCache(m, p)
    assert cache.ok and torch.allclose(cache.base, p.code_lengths(m), rtol=1e-5)
    layer = m.get_submodule(name)
    ran = []
    hooks = [b.register_forward_hook(lambda mod, a, o, i=i: ran.append(i)) for i, b in enumerate(cache.blocks)]
    with torch.no_grad():
        layer.weight.mul_(1.5)
    try:
        after = cache.after_change(layer)
    finally:
        for h in hooks:
            h.remove()
    assert set(ran) == {1}  # block 0's output came from the cache
    # llama blocks take cached keys and values: each group's prefix once, then each record's own tokens
    assert (cache.shared is not None, len(ran)) == ((True, 2) if make is tiny_llama else (False, 1))
    assert torch.allclose(after, p.code_lengths(m), rtol=1e-5)
    assert not torch.allclose(after, cache.base)  # the change is seen
    with pytest.raises(ValueError, match="none of the model's blocks"):
        cache.after_change(m.get_output_embeddings())


def test_block_cache_falls_back_to_full_forwards_when_its_path_differs(char_tok):
    p = MembershipProbe.from_secrets(char_tok, make_secrets(2), twins=1)
    m = _Capped()
    cache = BlockCache(m, p)
    assert not cache.ok and torch.equal(cache.base, p.code_lengths(m))
    layer = m.inner.model.layers[0].mlp.up_proj
    assert torch.allclose(cache.after_change(layer), p.code_lengths(m))


def _sharp_llama(attn: str = "sdpa") -> torch.nn.Module:
    """tiny_llama with sharp attention: at default init it is near uniform and would hide a wrong position."""
    m = tiny_llama()
    m.config._attn_implementation = attn
    with torch.no_grad():
        for layer in m.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
    return m


def _held_bytes(tensors: list[torch.Tensor]) -> int:
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_runs_each_groups_prefix_once(char_tok, attn):
    m = _sharp_llama(attn)
    p = MembershipProbe.from_secrets(char_tok, make_secrets(3), twins=2)
    cache = BlockCache(m, p)
    sh = cache.shared
    assert sh is not None and cache.shared_off == "" and torch.allclose(cache.base, p.code_lengths(m), atol=1e-4)
    pre, own = sh.pre_inputs[0], sh.own_inputs[0]
    assert pre.shape[0] == 3 and own.shape[0] == 9  # 3 prefixes, 9 records' own tokens
    assert pre.shape[0] * pre.shape[1] + own.shape[0] * own.shape[1] < 0.7 * p.ids.numel()
    # what the cache really holds (not views into the whole records' hidden states): less than they would
    held = _held_bytes(sh.pre_inputs + sh.own_inputs)
    assert cache.inputs == [] and held < 0.7 * len(sh.pre_inputs) * p.ids.numel() * pre.shape[-1] * 4
    # a change anywhere, keys, values and queries included, in the first block too: the full forward's values
    for i, block in enumerate(m.model.layers):
        for lin in (block.self_attn.q_proj, block.self_attn.k_proj, block.self_attn.v_proj, block.self_attn.o_proj,
                    block.mlp.gate_proj, block.mlp.down_proj):
            saved = lin.weight.detach().clone()
            with torch.no_grad():
                lin.weight.add_(torch.randn_like(lin.weight) * 0.3)
            try:
                after = cache.after_change(lin)
                assert cache.block_of[id(lin)] == i
                assert torch.allclose(after, p.code_lengths(m), atol=1e-3), (i, lin)
                assert not torch.allclose(after, cache.base, atol=1e-3)  # the change is seen
            finally:
                with torch.no_grad():
                    lin.weight.copy_(saved)


@pytest.mark.parametrize("bug", ["position", "mask"])
def test_a_wrong_shared_path_is_refused_at_build(char_tok, monkeypatch, bug):
    # plant the mistakes the shared path could make: records' rotary positions one off, a key they must not see
    from mdq_geoquant import probe as probe_mod

    real = probe_mod._SharedPrefix.__init__

    def planted(self, cache, pe):
        real(self, cache, pe)
        if bug == "position":
            cos, sin = pe
            pos = (self.own_pos + 1).clamp(max=cos.shape[1] - 1)
            self.own_pe = (cos[0][pos], sin[0][pos])
        else:
            self.own_mask[..., -1] = 0.0  # every query sees its record's last token: a future key

    monkeypatch.setattr(probe_mod._SharedPrefix, "__init__", planted)
    m = _sharp_llama()
    p = MembershipProbe.from_secrets(char_tok, make_secrets(3), twins=2)
    cache = BlockCache(m, p)
    assert cache.shared is None and "differs from the full forward" in cache.shared_off
    assert cache.ok and torch.allclose(cache.base, p.code_lengths(m), rtol=1e-5)  # whole records instead


def test_blocks_without_a_prefix_cache_say_why(char_tok):
    m = tiny_gpt2()
    cache = BlockCache(m, MembershipProbe.from_secrets(char_tok, make_secrets(2), twins=1))
    assert cache.shared is None and cache.ok and "rotary" in cache.shared_off
