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


class SeedList(click.ParamType):
    """Seeds as '0-4', '0,2,5' or '3'; a malformed list is a usage error before any training."""

    name = "seeds"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[int]:
        """Parse the option's text into a list of seeds."""
        if isinstance(value, list):
            return value
        from .seeds import parse_seeds

        try:
            return parse_seeds(str(value))
        except ValueError as exc:
            self.fail(f"{exc}; give seeds as 0-4, 0,2,5 or 3", param, ctx)


@moe.command("interference")
@click.option("--epochs", default=40, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seeds", default="0", show_default=True, type=SeedList(),
              help="Seeds to run, e.g. 0-4 or 0,3,7: each trains every model afresh; the summary gives mean, sd, "
                   "min and max over them.")
@click.option("--schedule", type=click.Choice(["cosine", "constant"]), default="cosine", show_default=True,
              help="Learning-rate schedule ('constant' with --freeze-masks 1 is the original recipe).")
@click.option("--freeze-masks", type=click.FloatRange(0, 1), default=0.75, show_default=True,
              help="Share of the epochs after which alpha (every expert's top-k set) stops changing; 1 = never.")
@click.option("--out", "out_dir", default="moe-interference", show_default=True, type=click.Path(file_okay=False),
              help="Where the JSON and the PNG figures go.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def interference(epochs: int, seeds: list[int], schedule: str, freeze_masks: float, out_dir: str, as_json: bool) -> None:
    """Two contradictory tasks (digit parity and its inverse) on scikit-learn's digits:
    CDSP-MoE vs a plain MLP of the same size (with and without the task id) vs a top-1 MoE.

    Writes results.json, alpha_heatmap.png and health_metrics.png (of the first seed) to --out.

    \b
    Example:
      mdq moe interference --epochs 40 --seeds 0-4 --out runs/moe
    """
    from pathlib import Path

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .experiment import plot, run_seeds

    con = Console(stderr=True)
    names = ("cdsp", "mlp", "mlp+task", "topk-moe")
    with Progress(console=con, transient=True) as bar:
        jobs = {(s, n): bar.add_task(f"seed {s} {n}", total=epochs) for s in seeds for n in names}
        res = run_seeds(epochs, seeds, progress=lambda s, n, e, r: bar.update(jobs[s, n], completed=e + 1),
                        schedule=schedule, freeze_masks=freeze_masks)
    first = res["runs"][0]
    for run in res["runs"]:
        run.pop("_model")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    res["figures"] = plot(first, out_dir)
    (Path(out_dir) / "results.json").write_text(json.dumps(res, indent=2))
    if as_json:
        click.echo(json.dumps({**res, "runs": [{k: v for k, v in r.items() if k != "alpha_sigmoid"} for r in res["runs"]]},
                              indent=2))
        return
    table = Table(title=f"interference test ({epochs} epochs, seeds {', '.join(map(str, seeds))}): "
                        f"test accuracy, mean +- sd [min, max]")
    for c in ("model", "params", "task 0", "task 1", f"runs below {res['goal']} on a task"):
        table.add_column(c)
    for name, s in res["summary"].items():
        cells = [f"{s[t]['mean']:.3f} +- {s[t]['sd']:.3f} [{s[t]['min']:.3f}, {s[t]['max']:.3f}]" for t in ("task0", "task1")]
        table.add_row(name, str(first["models"][name]["params"]), *cells, f"{s['below_goal']} of {s['runs']}")
    Console(width=140).print(table)
    click.echo(f"wrote {out_dir}/results.json and {', '.join(res['figures'])}")


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """Register `mdq moe`."""
    register("moe", moe)
