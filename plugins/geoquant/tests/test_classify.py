"""Outlier classifiers: Fisher estimates, overlap resolution, exposure."""

import math

import pytest
import torch

from mdq_geoquant.classify import (
    FunctionalClassifier, SensitiveClassifier, exposure, fisher_diag, resolve, row_loss_change, rtn_weight,
)
from mdq_geoquant.privacy import make_secrets
from mdq_geoquant.probe import MembershipProbe, row_effects
from mdq_quantkit.models import tiny_llama

X = [torch.randint(0, 256, (1, 24), generator=torch.Generator().manual_seed(i)) for i in range(3)]


def _layers(m):
    return {"model.layers.0.mlp.down_proj": m.get_submodule("model.layers.0.mlp.down_proj"),
            "model.layers.1.self_attn.q_proj": m.get_submodule("model.layers.1.self_attn.q_proj")}


def test_fisher_is_the_mean_squared_gradient_and_leaves_the_model_as_it_was():
    m = tiny_llama()
    layers = _layers(m)
    F = fisher_diag(m, X, layers)
    p = layers["model.layers.0.mlp.down_proj"].weight
    ref = torch.zeros_like(p)
    for x in X:
        m.zero_grad()
        m(x, labels=x).loss.backward()
        ref += p.grad.pow(2) / len(X)
    m.zero_grad()
    assert torch.allclose(F["model.layers.0.mlp.down_proj"], ref, rtol=1e-4, atol=1e-12)
    assert all(q.grad is None for q in m.parameters())


def test_row_loss_change_and_functional_scores():
    F = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    w = torch.zeros(2, 2)
    wq = torch.tensor([[1.0, 1.0], [3.0, 0.5]])
    assert torch.allclose(row_loss_change(F, w, wq), torch.tensor([1.5, 0.5]))
    m = tiny_llama()
    s = FunctionalClassifier(bits=2, group_size=32).scores(m, X, _layers(m), ppl=100.0)
    assert all(v.shape == (64,) and bool((v >= 0).all()) for v in s.values())
    with pytest.raises(ValueError, match="threshold"):
        FunctionalClassifier(threshold=0)


def test_sensitive_rows_are_measured_on_the_screens_top_candidates(char_tok):
    m = tiny_llama()
    layers = _layers(m)
    probe = MembershipProbe.from_secrets(char_tok, make_secrets(3), twins=2)
    before = {n: l.weight.detach().clone() for n, l in layers.items()}
    clf = SensitiveClassifier(threshold=1e-3, dauc=0.1, candidates=10, bits=2, group_size=32)
    s = clf.scores(m, probe, layers)
    assert sum(int(v.sum()) for v in s.measured.values()) == 10
    flat = torch.cat([s.screen[n] for n in layers])
    assert float(torch.cat([s.screen[n][s.measured[n]] for n in layers]).min()) >= float(flat.topk(10).values.min())
    n = "model.layers.0.mlp.down_proj"
    rows = s.measured[n].nonzero().flatten()
    bits, dauc = row_effects(m, probe, layers[n], rows, rtn_weight(layers[n].weight.detach(), 2, 32))
    # the classifier runs each group's shared prefix once: the same values up to float32 summation order
    assert torch.allclose(s.encoding_bits[n][rows], bits, atol=1e-3) and torch.allclose(s.dauc[n][rows], dauc)
    for k in layers:
        assert torch.equal(s.s_priv[k], torch.maximum(s.encoding_bits[k] / 1e-3, s.dauc[k] / 0.1))
        assert bool((s.s_priv[k][~s.measured[k]] == 0).all())  # not measured: not sensitive
        assert torch.equal(layers[k].weight, before[k])
    assert all(p.grad is None for p in m.parameters())
    with pytest.raises(ValueError, match="dAUC"):
        SensitiveClassifier(dauc=0)


def test_overlaps_go_where_lambda_says():
    f = {"l": torch.tensor([0.6, 0.1, 0.9, 0.0])}  # dPPL; threshold 0.3
    p = {"l": torch.tensor([1.0, 9.0, 12.0, 1.0])}  # ratio; threshold 5
    privacy_first = resolve(f, p, 0.3, 5.0, lam=0.9)
    assert privacy_first.functional["l"].tolist() == [0]
    assert privacy_first.sensitive["l"].tolist() == [1, 2]
    function_first = resolve(f, p, 0.3, 5.0, lam=0.1)
    assert function_first.functional["l"].tolist() == [0, 2] and function_first.sensitive["l"].tolist() == [1]
    assert function_first.counts() == {"functional": 2, "sensitive": 1}
    with pytest.raises(ValueError, match="lambda"):
        resolve(f, p, 0.3, 5.0, lam=2)



def test_exposure_ranks_the_secret_among_candidates(char_tok):
    m = tiny_llama()
    cands = [f"P{i:05d}" for i in range(1, 64)]
    e = exposure(m, char_tok, "id ", "P00000", cands)
    assert 0 <= e <= math.log2(64)
    with pytest.raises(ValueError, match="must not contain the secret"):
        exposure(m, char_tok, "id ", "P00001", cands)
