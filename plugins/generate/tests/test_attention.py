"""The window attention inside a real model: decoding over the KV cache equals a full windowed recompute,
a window wider than the text is plain causal attention, and the windows come from the state's length policy."""

import pytest
import torch

from mdq_flexattn.policy import TablePolicy
from mdq_flexattn.window import WindowAttention, window_mask
from mdq_generate.attention import NAME, first_chars, rows_mask, window_attention, window_table, windowed
from mdqcore.model.state import ControlState


@pytest.mark.parametrize("seed", range(4))
def test_rows_mask_is_the_window_mask_from_a_query_on(seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(1, 9, (2, 13), generator=g)
    full = window_mask(w)
    assert torch.equal(rows_mask(w, 0), full)
    for start in (1, 7, 12):
        assert torch.equal(rows_mask(w, start), full[:, :, start:, :])


def test_window_table_follows_the_length_policy_of_the_state():
    chars = ["a", "，", " ", "阿"]
    policy = TablePolicy(None, longest_from={"阿": 4})  # defaults: Lh_word 3, Lh_punct 4, Lh_term 2
    assert window_table(chars, policy.decide, 5).tolist() == [15, 20, 20, 10]
    wide = TablePolicy(ControlState({("param", "Len", "table", "Lh_word"): 6}), longest_from={"阿": 4})
    assert window_table(chars, wide.decide, 5).tolist() == [30, 20, 20, 10]
    with pytest.raises(ValueError, match=">= 1"):
        window_table(chars, policy.decide, 0)


def test_first_chars_of_a_byte_tokenizer(tiny):
    _, tok = tiny
    chars = first_chars(tok, len(tok) + 2)
    assert len(chars) == len(tok) + 2 and chars[-2:] == [" ", " "]
    assert chars[tok.convert_tokens_to_ids("a")] == "a" and chars[tok.convert_tokens_to_ids("Ġ")] == " "
    assert chars[tok.eos_token_id] == "<"  # special tokens are decided from their visible text


def _table(tok, model, scale):
    return window_table(first_chars(tok, model.get_input_embeddings().num_embeddings),
                        TablePolicy(None).decide, scale)


def _greedy(model, ids, n, **kw):
    x = torch.tensor([ids])
    return model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                          output_logits=True, return_dict_in_generate=True, **kw)


def test_decoding_with_the_cache_equals_a_full_windowed_recompute(tiny):
    model, tok = tiny
    ids = tok("Aspirin, or acetylsalicylic acid, is").input_ids
    table = _table(tok, model, 1)  # windows of 3 or 4 tokens: far shorter than the text
    with torch.inference_mode(), windowed(model, table, WindowAttention("dense")) as ctx:
        out = _greedy(model, ids, 12)
    assert ctx.calls > 0 and model.config._attn_implementation == "sdpa"
    seq = out.sequences[0]
    step_logits = torch.stack(out.logits, dim=1)[0]  # (12, V): each decoding step's logits
    with torch.inference_mode(), windowed(model, table, WindowAttention("dense")):
        full = model(seq[None, :-1], use_cache=False).logits[0, len(ids) - 1:]  # one pass, no cache
    assert torch.allclose(step_logits, full, atol=1e-4, rtol=1e-4)
    # the windows recorded per position are the table's, token by token
    assert torch.equal(ctx.windows[0], table[seq[:-1]])


def test_sampled_candidates_with_different_windows_equal_a_full_recompute(tiny):
    model, tok = tiny
    ids = tok("Ibuprofen, aspirin and paracetamol").input_ids
    table = _table(tok, model, 1)
    x = torch.tensor([ids])
    torch.manual_seed(0)
    with torch.inference_mode(), windowed(model, table, WindowAttention("dense")) as ctx:
        out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=True, top_k=0,
                             num_return_sequences=3, output_logits=True, return_dict_in_generate=True)
    seq = out.sequences  # (3, T): rows whose windows differ, so decoding takes the masked path
    assert len({tuple(r) for r in ctx.windows[:, len(ids):].tolist()}) > 1
    with torch.inference_mode(), windowed(model, table, WindowAttention("dense")):
        full = model(seq[:, :-1], use_cache=False).logits[:, len(ids) - 1:]
    assert torch.allclose(torch.stack(out.logits, dim=1), full, atol=1e-4, rtol=1e-4)


def test_a_window_wider_than_the_text_is_plain_causal_attention_and_a_narrow_one_is_not(tiny):
    model, tok = tiny
    ids = tok("The patient took ibuprofen because").input_ids
    with torch.inference_mode():
        plain = _greedy(model, ids, 16)
        with windowed(model, _table(tok, model, 1024), WindowAttention("dense")):
            wide = _greedy(model, ids, 16)
        with windowed(model, _table(tok, model, 1), WindowAttention("dense")):
            narrow = _greedy(model, ids, 16)
    assert torch.equal(plain.sequences, wide.sequences)
    assert torch.allclose(torch.stack(plain.logits), torch.stack(wide.logits), atol=1e-4, rtol=1e-4)
    # a random model's greedy tokens may coincide; its first step's distribution cannot
    assert not torch.allclose(plain.logits[0], narrow.logits[0], atol=1e-3)


def test_flex_prefill_matches_dense(tiny):
    model, tok = tiny
    x = torch.tensor([tok("flex attention, dense attention").input_ids])
    table = _table(tok, model, 1)
    with torch.inference_mode():
        with windowed(model, table, WindowAttention("dense")):
            dense = model(x, use_cache=False).logits
        with windowed(model, table, WindowAttention("flex")) as ctx:
            flex = model(x, use_cache=False).logits
    assert ctx.attn.used == "flex" and torch.allclose(dense, flex, atol=1e-4, rtol=1e-4)


def test_outside_a_windowed_block_it_refuses_and_the_model_is_restored(tiny):
    model, tok = tiny
    q = torch.zeros(1, 4, 3, 16)
    with pytest.raises(RuntimeError, match="outside a windowed generation"):
        window_attention(model.model.layers[0].self_attn, q, q[:, :2], q[:, :2], None)
    with pytest.raises(ZeroDivisionError):
        with windowed(model, _table(tok, model, 1), WindowAttention("dense")):
            assert model.config._attn_implementation == NAME
            1 / 0
    assert model.config._attn_implementation == "sdpa"
    assert not model.get_input_embeddings()._forward_pre_hooks
