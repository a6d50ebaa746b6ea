"""The interference experiment and `mdq moe interference` (issue #8)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mdq_cdsp_moe.experiment import digits_tasks
from mdq_cdsp_moe.plugin import moe


def test_tasks_are_contradictory_on_the_same_images():
    d = digits_tasks(0)
    n = len(d["train_x"]) // 2
    assert (d["train_x"][:n] == d["train_x"][n:]).all()
    assert (d["train_y"][:n] + d["train_y"][n:] == 1).all()  # every image: one task says 0, the other 1
    assert set(d["train_task"].tolist()) == {0, 1}


def test_cli_runs_and_writes_results_and_figures(tmp_path):
    r = CliRunner().invoke(moe, ["interference", "--epochs", "2", "--out", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert set(res["models"]) == {"cdsp", "mlp", "mlp+task", "topk-moe"}
    sizes = [m["params"] for m in res["models"].values()]
    assert max(sizes) / min(sizes) < 1.05  # same parameter budget
    assert (tmp_path / "results.json").exists() and (tmp_path / "alpha_heatmap.png").stat().st_size > 1000
    assert (tmp_path / "health_metrics.png").exists()
    assert len(res["models"]["cdsp"]["history"]) == 2 and "rank_overlap" in res["models"]["cdsp"]["history"][0]
