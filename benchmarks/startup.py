"""CLI start-up (issue #18): every first-party plugin installed vs `MDQ_PLUGINS=core`, beside `import click, rich`.

Each command runs as a fresh process, interleaved with the others (so a busy machine slows all
of them alike), 10 times; the table gives medians and the ratios the issue sets goals on:

  all / core      every installed plugin vs the kernel's plugin alone         goal: <= 1.3x
  help / anchor   `mdq --help` vs `python -c "import click, rich"`           goal: <= 2x

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import report

ROOT = Path(__file__).resolve().parents[1]


def _time(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, env=env, cwd=ROOT)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return took


def main() -> None:
    """Time each command with all plugins and with core only; write results/startup.json."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    mdq = shutil.which("mdq") or sys.exit("mdq is not on PATH: run scripts/setup.sh")
    with tempfile.TemporaryDirectory() as d:
        index = Path(d) / "index.json"
        index.write_text(json.dumps({"packages": {"a": {"1.0.0": {"requires": {"b": "^1"}}, "1.1.0": {}},
                                                  "b": {"1.0.0": {}, "1.2.0": {}}}}))
        commands = {"mdq --help": [mdq, "--help"], "mdq plugins list": [mdq, "plugins", "list"],
                    "mdq pkg validate": [mdq, "pkg", "validate", "examples/idf-boost.json"],
                    "mdq resolve": [mdq, "resolve", "--index", str(index), "--require", "a@^1"]}
        base = {k: v for k, v in os.environ.items() if k != "MDQ_PLUGINS"}
        envs = {"all": base, "core": {**base, "MDQ_PLUGINS": "core"}}
        anchor = [sys.executable, "-c", "import click, rich"]
        times: dict[tuple[str, str], list[float]] = {}
        for _ in range(a.runs):
            times.setdefault(("anchor", "-"), []).append(_time(anchor, base))
            for name, args in commands.items():
                for env_name, env in envs.items():
                    times.setdefault((name, env_name), []).append(_time(args, env))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = [{"command": 'python -c "import click, rich" (anchor)', "all_ms": med[("anchor", "-")] * 1e3}]
    for name in commands:
        row = {"command": name, "all_ms": med[(name, "all")] * 1e3, "core_ms": med[(name, "core")] * 1e3,
               "all_over_core": med[(name, "all")] / med[(name, "core")], "goal_all_over_core": 1.3}
        if name == "mdq --help":
            row["over_anchor"] = med[(name, "all")] / med[("anchor", "-")]
            row["goal_over_anchor"] = 2.0
        rows.append(row)
    report("startup", f"CLI start-up, median of {a.runs} interleaved runs (ms)",
           ["command", "all_ms", "core_ms", "all_over_core", "over_anchor"], rows, {"runs": a.runs})


if __name__ == "__main__":
    main()
