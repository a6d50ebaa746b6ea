"""The benchmark harness (issue #20): run.py's selection, the environment every result records, README figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import figures  # noqa: E402
import run  # noqa: E402


def test_every_benchmark_script_is_in_run_py():
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")} - {"run.py", "figures.py"}
    assert scripts == {b.script for b in run.BENCHMARKS.values()}
    for b in run.BENCHMARKS.values():
        text = (BENCH / b.script).read_text()
        assert "report(" in text  # every results file goes through report(), which records the environment
        for arg in b.quick or ():  # the smoke arguments are ones the script accepts
            if arg.startswith("--"):
                assert f'"{arg}"' in text, f"{b.script} has no option {arg}"


def test_only_selects_in_order_and_refuses_unknown_names_before_running_anything():
    assert run.select("quant,moe") == ["moe", "quant"]
    assert run.select(None) == list(run.BENCHMARKS)
    for bad in ("quant,nope", "", "moe,"):
        with pytest.raises(SystemExit, match="known: hooks"):
            run.select(bad)
    r = subprocess.run([sys.executable, str(BENCH / "run.py"), "--only", "nope"], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown benchmark" in r.stderr


def test_environment_records_commit_versions_threads_cpu_seeds_and_wall_time():
    env = _common.environment(seeds=[0, 1])
    assert len(env["commit"]) == 40 and isinstance(env["dirty"], bool)
    assert env["packages"]["numpy"] and "torch" in env["packages"] and "transformers" in env["packages"]
    assert env["machine"]["cpu_model"] and env["machine"]["cpus_usable"] >= 1
    assert env["seeds"] == [0, 1] and env["wall_s"] >= 0


def test_report_writes_the_environment_into_the_results_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    path = _common.report("probe", "t", ["a"], [{"a": 1.5}], {"extra": 2}, seeds={"draws": [0]})
    doc = json.loads(path.read_text())
    assert doc["environment"]["seeds"] == {"draws": [0]} and doc["rows"] == [{"a": 1.5}] and doc["extra"] == 2


@pytest.mark.parametrize("bad", ["4-0", "x", "1-", "", "1,,2", "-3"])
def test_malformed_seed_ranges_are_errors(bad):
    with pytest.raises(ValueError, match="seeds"):
        _common.parse_seeds(bad)


def test_seeds_and_spread():
    assert _common.parse_seeds("0-2,5") == [0, 1, 2, 5]
    s = _common.spread([1.0, 2.0, 3.0])
    assert s == {"n": 3, "mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    for bad in ([], [1.0, math.nan]):
        with pytest.raises(ValueError):
            _common.spread(bad)


def _readme(root: Path, body: str, results: dict) -> list[figures.Problem]:
    (root / "r.json").write_text(json.dumps(results))
    readme = root / "README.md"
    readme.write_text(body)
    return figures.check(readme)


@pytest.fixture
def in_repo(monkeypatch, tmp_path):
    # figures resolves marker paths against the repository root: point the root at a scratch tree
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    return tmp_path


def test_figures_in_a_marked_table_must_be_in_the_results(in_repo):
    results = {"rows": [{"ppl": 13.5871, "acc": 0.9777, "s": 90.1}], "nested": {"ratio": 1.3004}}
    ok = "## Measured\n<!-- figures: r.json -->\n| model | ppl | acc | s |\n|---|---|---|---|\n" \
         "| gptq w4 | **13.59** | 97.8% | 90 (1.30x) |\n"
    assert _readme(in_repo, ok, results) == []
    bad = ok.replace("13.59", "13.58")
    [p] = _readme(in_repo, bad, results)
    assert "13.58 is in no number" in str(p) and p.line == 5


def test_unmarked_results_tables_missing_files_and_empty_tables_are_problems(in_repo):
    table = "| a | b |\n|---|---|\n| x | 1.5 |\n"
    [p] = _readme(in_repo, "## Results\n" + table, {"v": 1.5})
    assert "without a `<!-- figures" in p.what
    [p] = _readme(in_repo, "## Other\n<!-- figures: missing.json -->\n" + table, {"v": 1.5})
    assert "missing file" in p.what
    [p] = _readme(in_repo, "## Other\n<!-- figures: r.json -->\n| a | b |\n|---|---|\n| x | n/a |\n", {"v": 1.5})
    assert "quotes no figure" in p.what
    [p] = _readme(in_repo, "## Other\n<!-- figures: r.json -->\n" + table, {"v": "text only"})
    assert "holds no numbers" in p.what
    assert _readme(in_repo, "## Other\n" + table, {"v": 1.5}) == []  # not a results table: no claim to check


def test_every_readme_figure_is_in_a_results_file():
    problems = [p for r in figures.readmes() for p in figures.check(r)]
    assert not problems, "\n".join(map(str, problems))


def test_mixed_precision_goal_is_judged_on_the_mean_gain_of_the_best_selector_at_w3g128_one_percent():
    import mixed_precision as mp

    def run(sel: str, draw: int, ppl: float, keep: float = 0.01) -> dict:
        return {"config": "w3g128", "draw": draw, "selector": sel, "keep": keep, "scope": "layer", "ppl": ppl,
                "file_MB": 1.0, "time_s": 1.0, "kept_share": keep, "gain_vs_gptq": (20.0 - ppl) / 20.0}

    base = [{**run("none (GPTQ)", d, 20.0, 0.0)} for d in (0, 1, 2)]
    for b in base:
        del b["gain_vs_gptq"]
    rows = base + [run("columns", d, p) for d, p in zip((0, 1, 2), (16.5, 16.0, 18.0))]
    rows += [run("hessian", d, 19.0) for d in (0, 1, 2)] + [run("columns", 0, 10.0, keep=0.005)]
    g = mp.goal(mp.summarize(rows))
    assert g["best"]["selector"] == "columns" and math.isclose(g["best"]["gain_mean"], 0.475 / 3) and g["met"]
    assert math.isclose(g["best"]["gain_min"], 0.10)  # the worst draw is reported next to the mean
    assert not mp.goal(mp.summarize(base + [run("hessian", 0, 19.0)]))["met"]
    assert mp.goal(mp.summarize(base)) == {"goal": mp.GOAL, "measured": False}  # nothing kept: not measured, not met
    assert "columns" in mp.SELECTORS and "columns" not in mp.ROW_SELECTORS


def test_gpu_benchmark_refuses_without_cuda_and_writes_nothing(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal is for machines without one")
    env = {**__import__("os").environ, "MDQ_BENCH_RESULTS": str(tmp_path)}
    r = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "no CUDA device" in r.stderr and not list(tmp_path.iterdir())
    r = subprocess.run([sys.executable, str(BENCH / "gpu.py"), "--m", "0,4"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--m takes positive integers" in r.stderr


def test_gpu_benchmark_smoke_runs_every_path_and_each_computes_the_product(tmp_path):
    import os

    env = {**os.environ, "MDQ_BENCH_RESULTS": str(tmp_path)}
    r = subprocess.run([sys.executable, str(BENCH / "gpu.py"), "--smoke"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "gpu-smoke.json").read_text())
    assert doc["smoke"] and doc["gpu"].startswith("none")
    paths = {"triton", "torch, dequant + matmul", "torch, cached weight", "float16 matmul"}
    assert {row["path"] for row in doc["rows"]} == paths and len(doc["rows"]) == 2 * 2 * len(paths)
    for row in doc["rows"]:
        # on CPU triton multiplies in float32 (exact to ~1e-7); the torch paths round x to float16 (~5e-4):
        # a code off by one step in a group is ~1e-2
        tol = 1e-5 if row["path"] == "triton" else 5e-3
        assert row["ok"] and row["max_rel_err"] < tol and row["us"] > 0 and row["weight_KB"] > 0, row
    packed = {row["weight_KB"] for row in doc["rows"] if row["path"] == "triton" and row["layer"] == "tiny"}
    dense = {row["weight_KB"] for row in doc["rows"] if row["path"] == "float16 matmul" and row["layer"] == "tiny"}
    assert max(packed) < min(dense) / 2  # 4-bit codes plus float16 scales: under half a float16 weight


def test_a_full_run_skips_the_gpu_benchmark_without_cuda_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "cuda_present", lambda: False)
    monkeypatch.setenv("MDQ_BENCH_RESULTS", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["run.py", "--only", "gpu"])
    with pytest.raises(SystemExit) as e:
        run.main()
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "skipped, no CUDA device" in out and "ran 0 benchmark(s)" in out and "skipped: gpu" in out
    [r] = json.loads((tmp_path / "run.json").read_text())["runs"]
    assert r["skipped"] == "no CUDA device" and r["benchmark"] == "gpu"
