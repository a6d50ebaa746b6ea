"""Hook dispatch and import cost of the kernel (issue #2).

Dispatch: calling one named capability through the registry (`registry.get(kind, name).obj(x)`)
vs selecting the same implementation through a pluggy hook directly, the way pluggy selects one
of several: a `firstresult` hook whose implementations return None unless the name is theirs.
Measured with 1 and 10 implementations registered. Goal: ratio registry / pluggy <= 1.1.

Import: wall time of `python -c "import mdqcore"` vs `import pluggy` (and an empty interpreter),
median of N fresh processes.

    python benchmarks/hooks.py [--imports 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import pluggy

import mdqcore
from _common import per_call_ns, report

spec = pluggy.HookspecMarker("bench")
impl = pluggy.HookimplMarker("bench")


class Spec:
    @spec(firstresult=True)
    def evaluate(self, name, x):
        """Return the evaluation of x by the implementation called `name`."""


def _impl_object(i: int):
    own = f"f{i}"

    class Impl:
        @impl
        def evaluate(self, name, x):
            return x + i if name == own else None

    return Impl()


def _capability_plugin(n: int):
    class Plugin:
        @mdqcore.hookimpl
        def register_evaluators(self, register):
            for i in range(n):
                register(f"f{i}", (lambda i: lambda x: x + i)(i))

    return Plugin()


def dispatch(n: int, number: int) -> dict:
    pm = pluggy.PluginManager("bench")
    pm.add_hookspecs(Spec)
    for i in range(n):
        pm.register(_impl_object(i))
    reg = mdqcore.load_plugins(extra=[("bench", _capability_plugin(n))], entry_points=False)
    target = f"f{n - 1}"  # pluggy calls the last registered first: the best case for pluggy... 
    target_worst = "f0"   # ...and this one last: its worst case
    hook = pm.hook.evaluate
    assert hook(name=target, x=1) == reg.get("evaluator", target).obj(1)
    assert hook(name=target_worst, x=1) == reg.get("evaluator", target_worst).obj(1)
    get = reg.get
    t_reg = per_call_ns(lambda: get("evaluator", target_worst).obj(1), number=number)
    t_best = per_call_ns(lambda: hook(name=target, x=1), number=number)
    t_worst = per_call_ns(lambda: hook(name=target_worst, x=1), number=number)
    fn = reg.get("evaluator", target_worst).obj
    t_bare = per_call_ns(lambda: fn(1), number=number)
    return {"case": f"dispatch, {n} impl{'s' if n > 1 else ''}", "registry_ns": t_reg,
            "pluggy_best_ns": t_best, "pluggy_worst_ns": t_worst, "bare_call_ns": t_bare,
            "ratio_vs_best": t_reg / t_best, "ratio_vs_worst": t_reg / t_worst}


def import_time(stmt: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", stmt], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imports", type=int, default=15, help="fresh processes per import measurement")
    ap.add_argument("--number", type=int, default=200_000, help="calls per timing run")
    a = ap.parse_args()
    rows = [dispatch(1, a.number), dispatch(10, a.number)]
    report("hooks_dispatch", "registry vs pluggy dispatch (ns per call, median of 7)",
           ["case", "registry_ns", "pluggy_best_ns", "pluggy_worst_ns", "bare_call_ns", "ratio_vs_best",
            "ratio_vs_worst"], rows, {"goal": "ratio_vs_best <= 1.1"})
    base = import_time("pass", a.imports)
    plug = import_time("import pluggy", a.imports)
    mdq = import_time("import mdqcore", a.imports)
    rows = [{"import": "python -c pass", "ms": base, "over_empty_ms": 0.0},
            {"import": "import pluggy", "ms": plug, "over_empty_ms": plug - base},
            {"import": "import mdqcore", "ms": mdq, "over_empty_ms": mdq - base,
             "ratio_over_pluggy": (mdq - base) / max(plug - base, 1e-9)}]
    report("hooks_import", f"import time (ms, median of {a.imports} processes)",
           ["import", "ms", "over_empty_ms", "ratio_over_pluggy"], rows)


if __name__ == "__main__":
    main()
