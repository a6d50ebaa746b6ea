"""Experiment (a) machinery: correlation statistics and one-layer-at-a-time loss changes."""

import math
import statistics as stats

import pytest
import torch

from mdq_geoquant.report import bootstrap_ci, encoder_batch, md_vs_loss, pearson, r2, spearman, statistics, summary_markdown
from mdq_quantkit.models import tiny_llama


def test_statistics_match_hand_values():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.5]
    assert pearson(x, y) == pytest.approx(stats.correlation(x, y))
    assert spearman([1, 2, 3, 4], [10, 20, 15, 40]) == pytest.approx(0.8)
    assert spearman([1, 1, 2], [1, 1, 2]) == pytest.approx(1.0)  # ties share ranks
    assert r2(x, y) == pytest.approx(pearson(x, y) ** 2)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_more_points():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, generator=g)
    y = (x + 0.5 * torch.randn(200, generator=g)).tolist()
    x = x.tolist()
    lo, hi = bootstrap_ci(x, y, pearson)
    assert lo < pearson(x, y) < hi and 0 < hi - lo < 0.2
    lo20, hi20 = bootstrap_ci(x[:20], y[:20], pearson)
    assert hi20 - lo20 > hi - lo
    assert bootstrap_ci(x, y, pearson) == [lo, hi]  # seeded: the same interval every time
    assert bootstrap_ci([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], pearson) is None  # constant side: undefined
    with pytest.raises(ValueError, match=">= 3"):
        bootstrap_ci([1.0, 2.0], [1.0, 2.0], pearson)


def test_encoder_batch_draws_paragraphs_by_seed():
    class Tok:
        def __call__(self, paras, **kw):
            return {"input_ids": torch.tensor([[len(p)] for p in paras]), "attention_mask": torch.ones(len(paras), 1)}

    text = "\n\n".join(f"paragraph {i} " + "x" * (80 + i) for i in range(10))
    first, _ = encoder_batch(Tok(), text, n=4)
    a, _ = encoder_batch(Tok(), text, n=4, seed=1)
    b, _ = encoder_batch(Tok(), text, n=4, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, first)
    with pytest.raises(ValueError, match="fewer than 11"):
        encoder_batch(Tok(), text, n=11)


def test_md_vs_loss_measures_each_layer_and_restores_the_model():
    m = tiny_llama()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(0))
    layers = ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.o_proj"]
    res = md_vs_loss(m, ids, layers, bits=(2, 4), fisher_samples=2, block_size=32)
    assert len(res["rows"]) == 4
    by = {(r["layer"], r["bits"]): r for r in res["rows"]}
    for name in layers:  # fewer bits: more distortion on every measure
        assert by[(name, 2)]["md"] > by[(name, 4)]["md"] and by[(name, 2)]["weight_err"] > by[(name, 4)]["weight_err"]
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    # the truncated forward (from the changed block on) equals a full forward's loss
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(m(ids).logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1))
    assert res["base_loss"] == pytest.approx(float(full), rel=1e-5)
    assert res["stats"] == statistics(res["rows"]) and "Spearman(MD, loss change)" in summary_markdown("t", res, "f.png")
    with pytest.raises(ValueError, match="no layer"):
        md_vs_loss(m, ids, ["model.layers.7.mlp.up_proj"])


def test_encoder_loss_is_zero_at_the_float_model_and_grows_with_fewer_bits():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    m = BertModel(BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=128)).eval()
    ids = torch.randint(0, 100, (6, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0
    layers = ["encoder.layer.0.attention.self.value", "encoder.layer.1.output.dense"]  # a random query barely matters
    res = md_vs_loss(m, ids, layers, bits=(2, 8), fisher_samples=2, block_size=32, mask=mask)
    assert res["base_loss"] == pytest.approx(0.0, abs=1e-6)
    assert all(p.requires_grad and p.grad is None for p in m.parameters())  # the probes left the model as it was
    by = {(r["layer"], r["bits"]): r for r in res["rows"]}
    for name in layers:
        assert by[(name, 2)]["d_loss"] > by[(name, 8)]["d_loss"] >= -1e-6
        assert by[(name, 2)]["riemannian"] > by[(name, 8)]["riemannian"] > 0
