"""The README's example package is valid and passes the default gates as written."""

import json
import re
from importlib.resources import files
from pathlib import Path

from mdq_flexattn import plugin as flexattn
from mdq_generate import plugin as generate
from mdq_generate.control import Controls
from mdqcore import builtin, load_package
from mdqcore.ledger.sqlite import SQLiteLedger
from mdqcore.runtime.hotplug import Runtime
from mdqcore.testing import load_isolated

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_example_package_applies_and_sets_the_controls(tmp_path):
    (block,) = re.findall(r"```json\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    reg = load_isolated(generate, "generate", registry=load_isolated(flexattn, "flexattn",
                                                                     registry=load_isolated(builtin, "core")))
    rt = Runtime(reg, SQLiteLedger(str(tmp_path / "l.sqlite")))
    inputs = json.loads((files("mdq_flexattn") / "data" / "scenario.json").read_text(encoding="utf-8"))["inputs"]
    rt.apply(load_package(json.loads(block)), inputs=inputs)
    c = Controls.of(rt.snapshot())
    assert (c.window, c.best_of, c.window_scale) == (True, 2, 32)
    rt.close()
