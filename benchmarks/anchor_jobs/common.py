"""What every anchor job shares: the protocol files, our perplexity function, RSS, decode speed.

These scripts run inside an anchor's own venv (gptqmodel or llm-compressor), never in mdq's.
They import only `mdq_quantkit.data` (plain torch) from the repository, so the perplexity of
every model, ours or theirs, is computed by the same function on the same tokens.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "quantkit" / "src"))

import torch  # noqa: E402

from mdq_quantkit.data import perplexity  # noqa: E402


def rss_mb() -> float:
    """Return this process's resident memory now, in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Return this process's peak resident memory so far, in MiB.

    Linux's VmHWM, not getrusage's ru_maxrss: a child started by fork + exec inherits its
    parent's peak in ru_maxrss (a benchmark parent that had converted the model made every job
    report its 1.27 GB), while VmHWM belongs to the process's own address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def protocol(path: str) -> dict[str, Any]:
    """Read the protocol file written by benchmarks/quant.py (calibration windows, eval ids, seqlen)."""
    return json.loads(Path(path).read_text())


@torch.no_grad()
def decode_tps(model: Any, prompt: list[int], new: int) -> float:
    """Return greedy decoding speed in tokens/s (KV cache on, batch 1), after one warm-up step."""
    x = torch.tensor([prompt])
    model.generate(x, max_new_tokens=2, min_new_tokens=2, do_sample=False)
    t0 = time.perf_counter()
    out = model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    return (out.shape[1] - x.shape[1]) / (time.perf_counter() - t0)


def trim() -> None:
    """Return freed heap to the OS (glibc), so RSS shows what is held, not what was once allocated."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def model_bytes(model: Any) -> int:
    """Return the bytes of every distinct tensor the model holds (parameters, buffers, mdq's int4 packs, once each)."""
    extra = [t for m in model.modules() if hasattr(m, "kernel_tensors") for t in m.kernel_tensors()]
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()) + extra:
        st = t.untyped_storage()
        if t.device.type != "meta" and st.data_ptr() not in seen:
            seen.add(st.data_ptr())
            total += st.nbytes()
    return total


def evaluate(load: Any, proto: dict[str, Any], out: dict[str, Any], preimport: Any = None) -> dict[str, Any]:
    """Load a model with `load()`, then measure its memory, perplexity and decode tokens/s into `out`.

    Memory: `model_mb` counts the model's tensors; `loaded_rss_mb` is the process's resident size
    after loading, one 8-token forward (so memory-mapped weights are paged in) and a heap trim,
    minus the size before loading with the loader's modules already imported (`preimport`).
    """
    torch.manual_seed(0)
    if preimport is not None:
        preimport()
    trim()
    before = rss_mb()
    model = load()
    model.eval()
    with torch.no_grad():
        model(torch.tensor([proto["eval"][:8]]), use_cache=False)
    trim()
    out["loaded_rss_mb"] = rss_mb() - before
    out["rss_after_load_mb"] = rss_mb()
    out["model_mb"] = model_bytes(model) / 2**20
    t0 = time.perf_counter()
    res = perplexity(model, torch.tensor(proto["eval"]), seqlen=proto["seqlen"], tokens=proto["tokens"])
    out.update(ppl=res["ppl"], eval_s=time.perf_counter() - t0)
    out["decode_tok_s"] = decode_tps(model, proto["eval"][:32], proto.get("decode_tokens", 64))
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def emit(result: dict[str, Any]) -> None:
    """Print the job's result as the last line of stdout (the benchmark reads it)."""
    print("RESULT " + json.dumps(result), flush=True)
