"""mdq-generate as a plugin: what it registers, that registering loads nothing heavy, its defaults in a live state."""

import json
import subprocess
import sys

from mdq_generate import plugin
from mdq_generate.params import KPIS, PARAMS, ROUTES
from mdqcore import builtin
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime
from mdqcore.testing import load_isolated


def test_registers_the_operator_and_the_pipeline():
    reg = load_isolated(plugin, "generate")
    op = reg.get("operator", "generate")
    assert op.meta["params"] == {k: b for k, (b, _d) in PARAMS.items()}
    assert op.meta["defaults"]["best_of"] == 1.0 and op.meta["defaults"]["window"] == 0.0
    pipe = reg.get("pipeline", "generate")
    assert tuple(pipe.meta["routes"]) == ROUTES == ("/v1/completions", "/v1/chat/completions")
    assert dict(pipe.meta["kpis"]) == KPIS and set(KPIS.values()) <= {"higher", "lower"}


def test_registering_imports_nothing_heavy():
    code = ("import sys, json; from mdqcore.testing import load_isolated; from mdq_generate import plugin; "
            "reg = load_isolated(plugin, 'generate'); reg.get('pipeline', 'generate'); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'transformers', 'numpy', 'mdq_flexattn', 'mdq_quantkit'})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_lazy_references_resolve():
    reg = load_isolated(plugin, "generate")
    from mdq_generate.control import controls
    from mdq_generate.pipeline import GeneratePipeline

    assert reg.get("operator", "generate").obj is controls
    assert reg.get("pipeline", "generate").obj is GeneratePipeline


def test_defaults_are_in_a_runtime_state(tmp_path):
    rt = Runtime(load_isolated(plugin, "generate", registry=load_isolated(builtin, "core")),
                 SQLiteLedger(str(tmp_path / "l.sqlite")))
    st = rt.snapshot()
    assert {k: st.param("Op", "generate", k) for k in PARAMS} == {k: d for k, (_b, d) in PARAMS.items()}
    rt.close()
