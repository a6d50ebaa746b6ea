"""mdq hooks of mdq-cdsp-moe: the `cdsp` MoE projector and the `mdq moe` commands.

Kept apart from the package's __init__ so that `mdq plugins list` does not import torch.
"""

from __future__ import annotations

import json
from typing import Any

import click

import mdqcore


def make_layer(*args: Any, **kwargs: Any) -> Any:
    """Build a CDSP-MoE layer from CDSPConfig's arguments (torch loads here, not at registration)."""
    from .layer import CDSPConfig, CDSPMoE

    return CDSPMoE(CDSPConfig(*args, **kwargs))


@mdqcore.hookimpl
def register_moe_projectors(register: Any) -> None:
    """Register the CDSP-MoE layer: factory(d, n_basis=512, n_experts=4, k=64, n_tasks=1, ...)."""
    register("cdsp", make_layer, version="0.1.0")


@click.group("moe")
def moe() -> None:
    """CDSP-MoE experiments.

    \b
    Example:
      mdq moe interference --json
    """


@moe.command("interference")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_dir", default="moe-interference", show_default=True, type=click.Path(file_okay=False),
              help="Where the JSON and the PNG figures go.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def interference(epochs: int, seed: int, out_dir: str, as_json: bool) -> None:
    """Two contradictory tasks (digit parity and its inverse) on scikit-learn's digits:
    CDSP-MoE vs a plain MLP of the same size (with and without the task id) vs a top-1 MoE.

    Writes results.json, alpha_heatmap.png and health_metrics.png to --out.

    \b
    Example:
      mdq moe interference --epochs 40 --out runs/moe
    """
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .experiment import plot, run_interference

    con = Console(stderr=True)
    with Progress(console=con, transient=True) as bar:
        jobs = {n: bar.add_task(n, total=epochs) for n in ("cdsp", "mlp", "mlp+task", "topk-moe")}
        res = run_interference(epochs, seed, progress=lambda n, e, r: bar.update(jobs[n], completed=e + 1))
    res.pop("_model")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    res["figures"] = plot(res, out_dir)
    (Path(out_dir) / "results.json").write_text(json.dumps(res, indent=2))
    if as_json:
        click.echo(json.dumps({k: v for k, v in res.items() if k != "alpha_sigmoid"}, indent=2))
        return
    table = Table(title=f"interference test ({epochs} epochs, seed {seed})")
    for c in ("model", "params", "task 0 acc", "task 1 acc", "step ms"):
        table.add_column(c)
    for name, m in res["models"].items():
        table.add_row(name, str(m["params"]), f"{m['test_acc_task0']:.3f}", f"{m['test_acc_task1']:.3f}", f"{m['step_ms']:.2f}")
    Console(width=120).print(table)
    click.echo(f"wrote {out_dir}/results.json and {', '.join(res['figures'])}")


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """Register `mdq moe`."""
    register("moe", moe)
