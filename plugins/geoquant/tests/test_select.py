"""Mixed precision by outlier rows (issue #20): scorers, budgets, the recorder over GPTQ, `mdq quantize --outliers`."""

import json

import pytest
import torch
from click.testing import CliRunner

from mdq_geoquant.constrained import param
from mdq_geoquant.select import (
    SCORERS, GeoQuantScore, HessianScore, KFACScore, RowContext, RowSelector, ScoreRecorder, WeightErrorScore, choose,
    sensitivities,
)
from mdq_gptq.gptq import GPTQ
from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import tiny_llama
from mdq_quantkit.qlinear import QuantLinear
from mdqcore.model.state import ControlState


def _samples(n=4, T=32):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (1, T), generator=g) for _ in range(n)]


def test_scores_follow_their_formulas():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 8, generator=g)
    wq = w + 0.1 * torch.randn(6, 8, generator=g)
    wq[2] = w[2]  # a row quantized without error scores 0 on every error measure
    h = torch.rand(8, generator=g)
    F = torch.rand(6, 8, generator=g)
    ctx = RowContext("layer", w, wq, h_diag=h, fisher=F)
    assert torch.allclose(WeightErrorScore()(ctx), ((wq - w) ** 2).sum(1))
    assert torch.allclose(HessianScore()(ctx), ((wq - w) ** 2 * h).sum(1))
    fisher = GeoQuantScore(md_percentile=0)(ctx)
    assert torch.allclose(fisher, 0.5 * (F * (wq - w) ** 2).sum(1)) and float(fisher[2]) == 0
    gated = GeoQuantScore(md_percentile=50)(RowContext("layer", w, wq, fisher=F, _md=torch.arange(6.0)))
    assert bool((gated[3:] >= 0).all()) and bool((gated[:3] < 0).all())  # only rows over the MD median are candidates
    assert torch.equal(gated[3:], fisher[3:])
    with pytest.raises(ValueError, match="md_percentile"):
        GeoQuantScore(md_percentile=100)
    H = torch.rand(8, 8, generator=g)
    H = H @ H.T
    G = torch.rand(6, generator=g)
    kfac = KFACScore()(RowContext("layer", w, wq, h=H, out_grad=G))
    assert torch.allclose(kfac, torch.stack([G[j] * (wq[j] - w[j]) @ H @ (wq[j] - w[j]) for j in range(6)]))


def test_choose_per_layer_and_over_the_model():
    scores = {"a": torch.tensor([5.0, 1.0, 3.0, 0.0]), "b": torch.tensor([4.0, 2.0])}
    per = choose(scores, {"a": 10, "b": 10}, 0.5, "layer")
    assert per["a"].tolist() == [0, 2] and per["b"].tolist() == [0]
    # one threshold over both layers; b's rows cost 30 weights each, a's 10: a budget of 40 takes 5.0 and 4.0
    glob = choose(scores, {"a": 10, "b": 30}, 40 / 100, "model")
    assert glob["a"].tolist() == [0] and glob["b"].tolist() == [0]
    with pytest.raises(ValueError, match=r"\(0, 50%\]"):
        choose(scores, {"a": 10, "b": 10}, 0.6, "layer")
    with pytest.raises(ValueError, match="NaN"):
        choose({"a": torch.tensor([1.0, float("nan")])}, {"a": 1}, 0.5, "layer")
    with pytest.raises(ValueError, match="no layer"):
        choose({}, {}, 0.1, "layer")
    with pytest.raises(ValueError, match="scope"):
        choose(scores, {"a": 10, "b": 10}, 0.1, "everywhere")


def test_recording_leaves_gptq_as_it_was_and_keeps_the_original_rows():
    samples = _samples()
    plain = tiny_llama()
    quantize_model(plain, QuantConfig(3, 32), GPTQ(), samples)
    m, ref = tiny_llama(), tiny_llama()
    rec = ScoreRecorder(GPTQ(), [SCORERS[n]() for n in ("random", "weight-error", "hessian", "md")] +
                        [GeoQuantScore(), KFACScore()], m, sensitivities(m, samples[:2]))
    quantize_model(m, QuantConfig(3, 32), rec, samples)
    names = [n for n, q in m.named_modules() if isinstance(q, QuantLinear)]
    assert set(rec.originals) == set(names)
    for n in names:  # scoring changed nothing GPTQ computed
        assert torch.equal(m.get_submodule(n).dequantized(), plain.get_submodule(n).dequantized())
    # block 0's q/k/v see the float inputs under GPTQ too: their H, gathered in GPTQ's threads, is the plain one
    from mdq_quantkit.layerwise import blocks_of, capture, layer_inputs

    inputs, kwargs = capture(ref, samples)
    H = {}
    layer_inputs(blocks_of(ref)[1][0], ["self_attn.q_proj"], inputs, kwargs,
                 lambda n, x: H.__setitem__(n, H.get(n, 0) + x.double().T @ x.double()))
    n = "model.layers.0.self_attn.q_proj"
    d = rec.originals[n].float() - m.get_submodule(n).dequantized()
    h = (H["self_attn.q_proj"] / sum(x.shape[1] for x in inputs)).float()
    assert torch.allclose(rec.scores["kfac"][n], rec.sens["out_grad"][n] * ((d @ h) * d).sum(1), rtol=1e-3)
    kept = rec.apply(m, "hessian", 0.1, "layer")
    assert kept["kept_rows"] == sum(round(0.1 * m.get_submodule(n).out_features) for n in names)
    n = "model.layers.1.mlp.down_proj"
    q, w = m.get_submodule(n), ref.get_submodule(n).weight.detach()
    rows = q.keep_idx
    assert rows.numel() == round(0.1 * w.shape[0])
    assert torch.equal(q.dequantized()[rows], w[rows].half().float())  # kept rows are the float16 originals
    assert torch.equal(rows, rec.scores["hessian"][n].topk(rows.numel()).indices.sort().values)
    rec.apply(m, "md", 0.02, "model")  # a second choice replaces the first
    assert sum(int(m.get_submodule(k).keep_idx.numel()) for k in names) < kept["kept_rows"]


def test_input_statistics_are_those_of_the_inputs_each_layer_received():
    from mdq_quantkit.layerwise import blocks_of, capture, layer_inputs, linears_of

    m = tiny_llama()
    samples = _samples()
    _, blocks = blocks_of(m)
    inputs, kwargs = capture(m, samples)
    want = {}

    def add(n, x):
        want[n] = want.get(n, 0) + x.double().T @ x.double()

    layer_inputs(blocks[0], list(linears_of(blocks[0])), inputs, kwargs, add)
    m2 = tiny_llama()
    rec = ScoreRecorder(RTN(), [KFACScore()], m2, sensitivities(m2, samples[:2]))
    quantize_model(m2, QuantConfig(3, 32), rec, samples)
    tokens = sum(x.shape[1] for x in inputs)
    n = "model.layers.0.mlp.down_proj"
    d = rec.originals[n].float() - m2.get_submodule(n).dequantized()
    H = (want["mlp.down_proj"] / tokens).float()
    g = rec.sens["out_grad"][n]
    assert torch.allclose(rec.scores["kfac"][n], g * ((d @ H) * d).sum(1), rtol=1e-3, atol=1e-9)
    assert bool((g > 0).all())


def test_hessian_scores_need_inputs_even_from_a_backend_that_never_runs_the_block():
    m = tiny_llama()
    rec = ScoreRecorder(RTN(), [HessianScore()], m)
    assert rec.needs_calibration
    quantize_model(m, QuantConfig(3, 32), rec, _samples())
    assert all(bool((s >= 0).all()) and float(s.sum()) > 0 for s in rec.scores["hessian"].values())
    with pytest.raises(ValueError, match="fisher"):
        ScoreRecorder(RTN(), [GeoQuantScore()], m)


def test_budget_scope_and_md_gate_come_from_the_geoquant_operator():
    state = ControlState({("param", "Op", "geoquant", "keep"): 0.05, ("param", "Op", "geoquant", "keep_scope"): 1.0,
                          ("param", "Op", "geoquant", "md_percentile"): 0.0})
    sel = RowSelector("geoquant", state)
    assert (sel.keep, sel.scope, sel.scorer.md_percentile) == (0.05, "model", 0.0)
    assert (param(None, "keep"), param(None, "keep_scope"), param(None, "md_percentile")) == (0.01, 0.0, 50.0)
    assert RowSelector("geoquant", state, keep=0.02, scope="layer").keep == 0.02  # explicit arguments win
    with pytest.raises(ValueError, match="keep_scope"):
        RowSelector("random", ControlState({("param", "Op", "geoquant", "keep_scope"): 0.5}))
    with pytest.raises(ValueError, match=r"\(0, 50%\]"):
        RowSelector("random", keep=0.0)
    with pytest.raises(ValueError, match="no row scorer"):
        RowSelector("largest")


def test_selector_end_to_end_on_a_tiny_model():
    m = tiny_llama()
    sel = RowSelector("geoquant", keep=0.05, fisher_samples=2)
    assert sel.needs_calibration
    with pytest.raises(RuntimeError, match="after quantizing"):
        sel.apply(m)
    samples = _samples()
    quantize_model(m, QuantConfig(3, 32), sel.wrap(GPTQ(), m, samples), samples)
    out = sel.apply(m)
    assert out["selector"] == "geoquant" and 0 < out["kept_share"] <= 0.05 and out["kept_rows"] > 0


def _quantize(args):
    from mdq_quantkit.commands import quantize

    return CliRunner().invoke(quantize, args)


@pytest.mark.parametrize("args,msg", [
    (["--outliers", "geoquant", "--keep", "60%"], "outside (0, 50%]"),
    (["--outliers", "geoquant", "--keep", "0%"], "outside (0, 50%]"),
    (["--outliers", "geoquant", "--keep", "-1%"], "outside (0, 50%]"),
    (["--outliers", "geoquant", "--keep", "lots"], "is not a share"),
    (["--outliers", "largest-rows"], "not a registered row selector"),
    (["--outliers", "functional"], "not a registered row selector"),  # a classifier that cannot choose rows
    (["--keep", "1%"], "give --outliers too"),
    (["--outliers", "hessian", "--backend", "awq"], "not 'awq'"),
    (["--outliers", "hessian", "--format", "gptq"], "only mdq's format"),  # the GPTQ layout has no float rows
])
def test_bad_mixed_precision_options_fail_before_any_work(tmp_path, args, msg):
    out = tmp_path / "out"
    # the model does not exist: an error about it would mean the options were checked after loading
    r = _quantize(["--model", str(tmp_path / "no-such-model"), "--backend", "gptq", "--bits", "3", *args,
                   "--out", str(out)])
    assert r.exit_code == 2 and msg in r.output, r.output
    assert "Traceback" not in r.output and not out.exists()


@pytest.mark.slow
def test_quantize_keeps_the_selected_rows_on_smollm2(tmp_path):
    r = _quantize(["--model", "smollm2-135m", "--backend", "rtn", "--bits", "3", "--outliers", "hessian", "--keep", "1%",
                   "--samples", "2", "--seqlen", "64", "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "q" / "mdq_quant.json").read_text())
    assert meta["outliers"]["selector"] == "hessian" and 0.009 < meta["outliers"]["kept_share"] <= 0.01


def test_the_selector_reads_its_budget_from_the_live_state(tmp_path):
    # a package setting the geoquant operator's keep changes what `mdq quantize --outliers` keeps
    import mdqcore
    from mdq_quantkit.commands import _selector, _state

    from mdqcore.ledger.sqlite import SQLiteLedger
    from mdqcore.runtime import Runtime

    path = tmp_path / "l.sqlite"
    rt = Runtime(mdqcore.load_plugins(only=["core", "geoquant"]), SQLiteLedger(path))
    rt.set_policy({"allow_skip_shadow": True, "mandatory_gates": {"*": []}}, None, "test: no KPI for an Op")
    rt.apply(mdqcore.load_package({"name": "gq.keep", "semver": "1.0.0", "atoms": [
        {"type": "Op", "op": "geoquant", "param": "keep", "value": 0.02},
        {"type": "Op", "op": "geoquant", "param": "keep_scope", "value": 1.0}]}))
    rt.close()
    sel = _selector("hessian", None, _state(str(path)))
    assert (sel.keep, sel.scope) == (0.02, "model")
    assert _selector("hessian", "0.5%", _state(str(path))).keep == 0.005  # an explicit --keep wins
    with pytest.raises(SystemExit):  # a named ledger that does not exist is an error, not "no state"
        _state(str(tmp_path / "missing.sqlite"))
    assert not (tmp_path / "missing.sqlite").exists()


@pytest.mark.parametrize("scope", ["layer", "model"])
def test_a_budget_that_keeps_no_row_is_refused(scope):
    scores = {"a": torch.arange(10.0), "b": torch.arange(20.0)}
    with pytest.raises(ValueError, match="keeps no row"):
        choose(scores, {"a": 100, "b": 100}, 0.01, scope)
    assert sum(r.numel() for r in choose(scores, {"a": 100, "b": 100}, 0.1, scope).values()) > 0
