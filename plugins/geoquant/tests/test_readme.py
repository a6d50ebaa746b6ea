"""The README's Python example runs as written."""

from pathlib import Path

from mdqcore.testing import run_readme_python

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path):
    n, out = run_readme_python(README, tmp_path)
    value, layers = out.split()
    assert n == 1 and float(value) > 0 and layers == "8"  # 2 blocks x q, k, v, o
