"""The anchors' own virtual environments (gptqmodel, llm-compressor), built once under the user cache dir.

Each anchor gets a venv of its own, never the repository's: `torch==2.13.0` is pinned so pip
takes the CPU build already on disk instead of downloading a CUDA one. gptqmodel runs on CPU
(its torch kernels) with `GPTQMODEL_CPU_WORKERS=2`. A venv is reused when its marker file says
it was built with the same requirements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ANCHORS: dict[str, list[str]] = {
    "gptqmodel": ["torch==2.13.0", "gptqmodel==7.6.0", "optimum>=1.21"],
    "llmcompressor": ["torch==2.13.0", "llmcompressor==0.14.0.1"],
}
# OMP_WAIT_POLICY=PASSIVE: on a shared 2-core machine, OpenMP threads that spin while waiting made a
# 2-thread forward 30x slower than a 1-thread one whenever another process held a core
ENV = {"GPTQMODEL_CPU_WORKERS": "2", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def anchors_dir() -> Path:
    """Return the cache folder holding the anchors' venvs (never inside the repository)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mdq")) / "anchors"


def venv(name: str) -> Path:
    """Return the python of anchor `name`'s venv, building it first if it is missing or stale."""
    reqs = ANCHORS[name]
    root = anchors_dir() / name
    py = root / "bin" / "python"
    marker = root / "mdq-anchor.json"
    if py.is_file() and marker.is_file() and json.loads(marker.read_text()).get("requirements") == reqs:
        return py
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", *reqs], check=True, env=env)
    marker.write_text(json.dumps({"requirements": reqs}))
    return py


def run(name: str, args: list[str], **kw: object) -> subprocess.CompletedProcess:
    """Run `python args...` in anchor `name`'s venv with the anchors' environment."""
    return subprocess.run([str(venv(name)), *args], env={**os.environ, **ENV}, **kw)  # type: ignore[arg-type]


if __name__ == "__main__":
    unknown = [n for n in sys.argv[1:] if n not in ANCHORS]
    if unknown:  # --help lands here too
        sys.exit(f"usage: python benchmarks/_anchors.py [{' '.join(ANCHORS)}]  (builds the named anchor venvs, "
                 f"default all, under {anchors_dir()}); unknown: {' '.join(unknown)}")
    for n in sys.argv[1:] or list(ANCHORS):
        print(n, venv(n))
