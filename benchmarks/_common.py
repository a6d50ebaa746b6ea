"""Shared helpers for benchmark scripts: the environment a result came from, timing, spread, JSON + table output.

Every results file is written by `report`, which records `environment(...)`: the commit (and
whether the working tree had uncommitted changes), the versions of the packages the numbers
depend on, the CPU model, thread counts, the seeds the script was given and its wall time.
`MDQ_BENCH_RESULTS` redirects every output (`run.py --quick` uses it, so a smoke run never
overwrites the recorded results).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from mdq_cdsp_moe.seeds import parse_seeds  # noqa: F401 - one parser for every seed list
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(os.environ.get("MDQ_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
STARTED = time.perf_counter()
STARTED_AT = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
# the packages whose versions can move a figure; one missing here is recorded as null
PACKAGES = ("torch", "transformers", "numpy", "safetensors", "scikit-learn", "optimum", "triton", "pluggy",
            "resolvelib", "pyahocorasick", "jieba", "psycopg", "rich", "click", "attrs", "cattrs", "matplotlib",
            "mdqcore", "mdq-quantkit", "mdq-gptq", "mdq-awq", "mdq-geoquant", "mdq-cdsp-moe", "mdq-flexattn")


def machine() -> dict[str, Any]:
    """Describe where the numbers were taken: Python, OS, CPU model, cores usable, thread settings."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count(), "cpus_usable": usable, "cpu_model": cpu_model(),
                           "processor": platform.processor() or platform.machine(),
                           "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    torch = sys.modules.get("torch")  # never imported here: a benchmark of import time must not pay for it
    if torch is not None:
        out["torch_threads"] = torch.get_num_threads()
        out["torch_interop_threads"] = torch.get_num_interop_threads()
    return out


def cpu_model() -> str:
    """Return the CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> dict[str, Any]:
    """Return the commit the code ran at and whether tracked files differed from it."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return {"commit": head, "dirty": None if status is None else bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def versions() -> dict[str, str | None]:
    """Return the installed version of every package in PACKAGES (None where it is not installed)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


_AT_START: dict[str, Any] = {}


def environment(seeds: Any = None) -> dict[str, Any]:
    """Everything a results file must say about where and how it was produced (the commit as the script started)."""
    return {**(_AT_START or git_commit()), "packages": versions(), "machine": machine(), "seeds": seeds,
            "argv": sys.argv[1:], "started_at": STARTED_AT, "wall_s": time.perf_counter() - STARTED}


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """Return n, mean, sd (sample, n-1), min and max of a list of figures; NaN never counts as a figure."""
    vals = [float(v) for v in values]
    if not vals or any(math.isnan(v) for v in vals):
        raise ValueError(f"a spread needs at least one figure and no NaN, got {vals}")
    return {"n": len(vals), "mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals)}


def per_call_ns(fn: Callable[[], Any], *, number: int, repeat: int = 7) -> float:
    """Return the median over `repeat` runs of the time per call, in nanoseconds."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter_ns() - t0) / number)
    return statistics.median(runs)


def report(name: str, title: str, columns: Sequence[str], rows: list[dict[str, Any]],
           extra: dict[str, Any] | None = None, *, seeds: Any = None) -> Path:
    """Write results/NAME.json (with the environment) and print the rows as a table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    env = environment(seeds)
    payload = {"benchmark": name, "environment": env, "machine": env["machine"], "rows": rows, **(extra or {})}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_fmt(r.get(c)) for c in columns))
    Console(width=max(200, Console().width)).print(table)
    print(f"wrote {path}")
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "-" if v is None else str(v)


# the code that runs is the code at start: a commit made while a long benchmark runs must not be recorded as its source
_AT_START.update(git_commit())
