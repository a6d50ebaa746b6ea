"""`import mdqcore` stays light: no torch, no numpy, no rich (issue #2)."""

from __future__ import annotations

import subprocess
import sys


def test_import_mdqcore_does_not_import_heavy_modules():
    code = ("import sys, mdqcore; heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'numpy', 'rich', 'click', 'triton'}); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
