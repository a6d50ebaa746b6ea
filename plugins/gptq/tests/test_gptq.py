import pytest
import torch

from mdq_gptq import plugin
from mdq_gptq.gptq import GPTQ, gptq_keep, gptq_quantize, weak_columns
from mdq_quantkit.backends import RTN, quantize_model
from mdq_quantkit.config import QuantConfig
from mdq_quantkit.models import tiny_llama
from mdq_quantkit.quant import dequantize, rtn


def _problem(seed=0, n=96, out=48, tokens=512):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(tokens, n, generator=g) @ torch.randn(n, n, generator=g)  # correlated inputs, as in a network
    W = torch.randn(out, n, generator=g)
    return X, W, 2 * X.t() @ X / tokens


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("bits,group", [(4, 32), (3, 32), (4, -1), (3, 40)])
def test_gptq_beats_rtn_on_the_layer_objective(bits, group, act_order):
    X, W, H = _problem()
    cfg = QuantConfig(bits, group)
    codes, s, z = gptq_quantize(W, H, cfg, blocksize=32, act_order=act_order)
    assert int(codes.min()) >= 0 and int(codes.max()) <= cfg.maxq
    err_gptq = ((X @ (dequantize(codes, s, z, cfg) - W).t()) ** 2).mean()
    err_rtn = ((X @ (dequantize(*rtn(W, cfg), cfg) - W).t()) ** 2).mean()
    assert err_gptq < 0.8 * err_rtn


def test_stacked_rows_quantize_as_each_layer_alone():
    X, W, H = _problem(out=40)
    cfg = QuantConfig(4, 32)
    both = gptq_quantize(W, H, cfg, act_order=True)
    for rows in (slice(0, 24), slice(24, 40)):  # e.g. q and k sharing one Hessian
        alone = gptq_quantize(W[rows], H, cfg, act_order=True)
        assert all(torch.equal(a, b[rows]) for a, b in zip(alone, both, strict=True))


def test_a_layer_no_calibration_input_reaches_is_refused():
    class Skip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Linear(32, 32), torch.nn.Linear(32, 32)

        def forward(self, x):
            return self.a(x) if float(x.sum()) > -1e9 else self.b(x)

    blk = Skip()
    with pytest.raises(ValueError, match="no calibration input reached layer 'b'"):
        GPTQ().quantize_block_forward(blk, [torch.ones(1, 4, 32)], {}, QuantConfig(4, 32))


def test_dead_inputs_and_a_singular_hessian():
    X, W, H = _problem()
    H[:, 5] = 0
    H[5, :] = 0
    codes, s, z = gptq_quantize(W, H, QuantConfig(4, 32))
    assert torch.isfinite(dequantize(codes, s, z, QuantConfig(4, 32))).all()
    with pytest.raises(ValueError, match="damp"):
        GPTQ(damp=0)


def test_bfloat16_calibration_runs_the_matmuls_in_bfloat16_and_still_beats_rtn():
    x = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(1))
    samples = [torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(i + 2)) for i in range(16)]
    errs, codes, used = {}, {}, {}
    for name, b in (("rtn", RTN()), ("f32", GPTQ(calibration="float32")), ("bf16", GPTQ(calibration="bfloat16"))):
        m = tiny_llama()
        with torch.no_grad():
            ref = m(x).logits
            quantize_model(m, QuantConfig(3, 32), b, samples)
            errs[name] = float(((m(x).logits - ref) ** 2).mean())
        codes[name] = m.model.layers[1].mlp.down_proj.codes()
        used[name] = m.mdq_quant.get("backend_settings", {}).get("calibration_dtype")
    assert errs["bf16"] < errs["rtn"]
    assert not torch.equal(codes["bf16"], codes["f32"])  # the option changes the calibration inputs
    assert used == {"rtn": None, "f32": "float32", "bf16": "bfloat16"}  # the checkpoint says how it was made
    with pytest.raises(ValueError, match="float32, bfloat16 or auto"):
        GPTQ(calibration="float16")


@pytest.mark.parametrize("true_sequential", [True, False])
def test_model_level_gptq_is_closer_to_fp_than_rtn(true_sequential):
    x = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(1))
    samples = [torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(i + 2)) for i in range(16)]
    errs = {}
    for b in (RTN(), GPTQ(true_sequential=true_sequential)):
        m = tiny_llama()
        with torch.no_grad():
            ref = m(x).logits
            quantize_model(m, QuantConfig(3, 32), b, samples)
            errs[b.name] = float(((m(x).logits - ref) ** 2).mean())
    assert errs["gptq"] < errs["rtn"]
    with pytest.raises(ValueError, match="needs calibration"):
        quantize_model(tiny_llama(), QuantConfig(4, 32), GPTQ(), [])


def _outlier_problem(seed=0, n=128, out=64, tokens=1024):
    X, W, _ = _problem(seed, n, out, tokens)
    X[:, [7, 50, 99]] *= 25  # input channels with outlier activations, as in LLMs
    return X, W, 2 * X.t() @ X / tokens


@pytest.mark.parametrize("act_order", [False, True])
def test_kept_columns_absorb_the_error_of_the_others(act_order):
    X, W, H = _outlier_problem()
    cfg = QuantConfig(3, 32)
    keep = weak_columns(W, H, cfg, 3)
    assert keep.tolist() == [7, 50, 99]  # the outlier channels carry the largest H_jj * rounding error
    codes, s, z, vals = gptq_keep(W, H, cfg, keep, blocksize=32, act_order=act_order)
    deq = dequantize(codes, s, z, cfg)
    assert torch.equal(deq[:, keep], torch.zeros(64, 3))  # their codes are the zero point
    deq[:, keep] = vals
    assert not torch.allclose(vals, W[:, keep])  # they took the other columns' error, not their own values

    def err(d):
        return float(((X @ (d - W).t()) ** 2).mean())

    plain = err(dequantize(*gptq_quantize(W, H, cfg, blocksize=32, act_order=act_order), cfg))
    kept_after = dequantize(*gptq_quantize(W, H, cfg, blocksize=32, act_order=act_order), cfg)
    kept_after[:, keep] = W[:, keep]  # the same columns restored after plain GPTQ
    assert err(deq) < 0.5 * plain and err(deq) < 0.5 * err(kept_after)
    same = gptq_keep(W, H, cfg, None, blocksize=32, act_order=act_order)
    assert all(torch.equal(a, b) for a, b in zip(same[:3], gptq_quantize(W, H, cfg, blocksize=32, act_order=act_order),
                                                  strict=True)) and same[3].shape == (64, 0)
    with pytest.raises(ValueError, match=r"input columns in \[0, 128\)"):
        gptq_keep(W, H, cfg, torch.tensor([128]))


def test_keep_columns_at_model_level_and_bad_shares():
    samples = [torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(i + 2)) for i in range(8)]
    m = tiny_llama()
    quantize_model(m, QuantConfig(3, 32), GPTQ(keep_columns=0.04), samples)
    q = m.get_submodule(m.mdq_quant["modules"][0])
    # the share is a budget: 0.04 x 64 = 2.56 keeps 2 columns (rounding to nearest would keep 3), 0.04 x 160 keeps 6
    counts = {m.get_submodule(n).in_features: m.get_submodule(n).keep_cols.numel() for n in m.mdq_quant["modules"]}
    assert counts == {64: 2, 160: 6} and q.keep_colvals.shape == (q.out_features, q.keep_cols.numel())
    q.check_kept_columns("layer 0")
    tiny = tiny_llama()
    quantize_model(tiny, QuantConfig(3, 32), GPTQ(keep_columns=0.01), samples)  # under one column: one is kept
    assert {tiny.get_submodule(n).keep_cols.numel() for n in tiny.mdq_quant["modules"]} == {1}
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match="keep_columns"):
            GPTQ(keep_columns=bad)


def test_registered(mdq_load_plugin):
    reg = mdq_load_plugin(plugin)
    assert isinstance(reg.get("quantizer", "gptq").obj(act_order=True), GPTQ)


def test_default_calibration_is_auto_and_records_what_auto_resolved_to(monkeypatch):
    import mdq_quantkit.layerwise as lw

    assert GPTQ().calibration == "auto"
    samples = [torch.randint(0, 256, (1, 32), generator=torch.Generator().manual_seed(i)) for i in range(4)]
    for native, want in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(lw.torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native, raising=False)
        monkeypatch.setattr(lw.torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
        m = tiny_llama()
        with torch.no_grad():
            done = quantize_model(m, QuantConfig(4, 32), GPTQ(), samples)
        assert done["settings"]["calibration"] == "auto" and done["settings"]["calibration_dtype"] == want
        assert m.mdq_quant["backend_settings"] == done["settings"]


def test_settings_before_any_run_do_not_guess_what_auto_will_resolve_to():
    assert GPTQ().settings()["calibration_dtype"] is None  # auto: decided by the inputs' device, per run
    assert GPTQ(calibration="bfloat16").settings()["calibration_dtype"] == "bfloat16"
    assert GPTQ(calibration="float32").settings()["calibration_dtype"] == "float32"
    assert GPTQ(true_sequential=False).settings()["calibration_dtype"] == "float32"  # that pass never autocasts


@pytest.mark.parametrize("act_order", [False, True])
def test_the_solve_reports_its_objective_which_gives_the_proxy_loss_without_a_matmul(act_order):
    X, W, H = _problem()
    X[:, 5] = 0  # a dead column: its error costs nothing
    H = X.t() @ X * 2 / X.shape[0]
    cfg = QuantConfig(4, 32)
    for keep in (None, torch.tensor([3, 17])):
        solve = {}
        codes, s, z, vals = gptq_keep(W, H, cfg, keep, act_order=act_order, solve=solve)
        deq = dequantize(codes, s, z, cfg)
        if keep is not None:
            deq[:, keep] = vals
        d = deq - W
        direct = float(torch.einsum("oi,ij,oj->", d, H, d))
        via_solve = float(solve["row_objective"].sum()) - solve["damping"] * float(d[:, torch.diag(H) != 0].pow(2).sum())
        assert solve["damping"] > 0 and via_solve == pytest.approx(direct, rel=1e-4)
