"""The interference experiment and `mdq moe interference` (issue #8)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mdq_cdsp_moe.experiment import CDSPNet, digits_tasks, train
from mdq_cdsp_moe.plugin import moe


def test_tasks_are_contradictory_on_the_same_images():
    d = digits_tasks(0)
    n = len(d["train_x"]) // 2
    assert (d["train_x"][:n] == d["train_x"][n:]).all()
    assert (d["train_y"][:n] + d["train_y"][n:] == 1).all()  # every image: one task says 0, the other 1
    assert set(d["train_task"].tolist()) == {0, 1}


def test_cli_runs_every_seed_and_summarizes_the_spread(tmp_path):
    r = CliRunner().invoke(moe, ["interference", "--epochs", "1", "--seeds", "0-1", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["seeds"] == [0, 1] and [run["seed"] for run in res["runs"]] == [0, 1]
    first = res["runs"][0]
    assert set(first["models"]) == {"cdsp", "mlp", "mlp+task", "topk-moe"}
    sizes = [m["params"] for m in first["models"].values()]
    assert max(sizes) / min(sizes) < 1.05  # same parameter budget
    for name, s in res["summary"].items():
        accs = [run["models"][name]["test_acc_task0"] for run in res["runs"]]
        assert s["task0"]["min"] == min(accs) and s["task0"]["max"] == max(accs)
        assert s["task0"]["mean"] == pytest.approx(sum(accs) / 2)
        assert s["runs"] == 2 and s["below_goal"] == sum(run["models"][name]["min_task_acc"] < 0.95 for run in res["runs"])
    assert (tmp_path / "results.json").exists() and (tmp_path / "alpha_heatmap.png").stat().st_size > 1000
    assert (tmp_path / "health_metrics.png").exists()
    hist = first["models"]["cdsp"]["history"]
    assert len(hist) == 1 and "rank_overlap" in hist[0] and len(hist[0]["mask_changes"]) == 2


@pytest.mark.parametrize("bad", ["4-0", "a", "0-", "-1", "", "0,,2", "1-2-3"])
def test_malformed_seeds_are_refused_before_any_training(tmp_path, bad):
    out = tmp_path / "out"
    r = CliRunner().invoke(moe, ["interference", "--seeds", bad, "--out", str(out)])
    assert r.exit_code == 2 and "--seeds" in r.output and "0-4" in r.output
    assert not out.exists()  # nothing was written: the error came first


def test_frozen_masks_stay_put_and_the_rate_decays():
    torch.manual_seed(0)
    data = digits_tasks(0)
    net = CDSPNet(d=16, n_basis=32, n_experts=2, k=4)
    seen = []
    train(net, data, epochs=4, seed=0, cdsp=True, schedule="cosine", freeze_masks=0.5,
          progress=lambda e, r: seen.append([layer.alpha.detach().clone() for layer in net.layers]))
    # alpha (hence every mask) is the same after the freeze at epoch 2 as at its end
    assert all(torch.equal(a, b) for a, b in zip(seen[1], seen[3], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(seen[0], seen[1], strict=True))  # it moved before
    assert all(layer.alpha.requires_grad for layer in net.layers)  # handed back trainable
    with pytest.raises(ValueError, match="schedule"):
        train(net, data, epochs=1, seed=0, schedule="step")
    with pytest.raises(ValueError, match="freeze_masks"):
        train(net, data, epochs=1, seed=0, freeze_masks=1.5)
