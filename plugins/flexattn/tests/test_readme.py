"""The plugin README's Python blocks run as written (docs that run), each as a script in a child process."""

from pathlib import Path

from mdqcore.testing import run_readme_python

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path):
    n, out = run_readme_python(README, tmp_path)
    assert n >= 2
    assert "flex (1, 2, 16, 8)" in out and "['阿司匹林', '是一种', '环氧合酶', '抑制剂']" in out
