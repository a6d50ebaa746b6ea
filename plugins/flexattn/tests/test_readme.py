"""The plugin README's Python blocks run as written (docs that run), each as a script in a child process."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    out = ""
    for i, code in enumerate(blocks):
        script = tmp_path / f"block{i}.py"
        script.write_text(code, encoding="utf-8")
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, f"README block {i} failed:\n{r.stderr}"
        out += r.stdout
    assert "flex (1, 2, 16, 8)" in out and "['阿司匹林', '是一种', '环氧合酶', '抑制剂']" in out
