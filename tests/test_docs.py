"""The authoring tutorial's code works as written (issue #2: docs that run)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import mdqcore

DOC = Path(__file__).resolve().parents[1] / "docs" / "authoring.md"
FENCE = re.compile(r"```\w+ file=(\S+)( append)?\n(.*?)```", re.S)


def test_tutorial_plugin_builds_loads_and_its_test_passes(tmp_path, monkeypatch):
    for name, append, body in FENCE.findall(DOC.read_text(encoding="utf-8")):
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text((f.read_text() if append else "") + body, encoding="utf-8")
    project = tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]
    info = tmp_path / "src" / f"mdq_hello-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = project["entry-points"]["mdq.plugins"]
    (info / "entry_points.txt").write_text("[mdq.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    try:
        reg = mdqcore.load_plugins(only=["hello"])
        assert reg.plugins["hello"].status == "ok", reg.plugins["hello"].error
        assert reg.names("command") == ["hello"] and reg.names("gate") == ["hello-blacklist"]
        # the tutorial's own test, run by pytest in a child process as the reader would
        env_path = f"{tmp_path / 'src'}"
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
                           capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": env_path, "PATH": ""})
        assert r.returncode == 0, r.stdout + r.stderr
        # and the CLI command it registers
        r = subprocess.run([sys.executable, "-m", "mdqcore.cli", "hello", "Ada"], capture_output=True, text=True,
                           env={"PYTHONPATH": env_path, "MDQ_PLUGINS": "hello", "PATH": ""})
        assert r.stdout == "hello, Ada\n", r.stderr
    finally:
        sys.modules.pop("mdq_hello", None)


def test_testing_guide_examples_pass(tmp_path):
    # docs/testing.md documents every fixture with an example; the examples are one test file
    doc = DOC.parent / "testing.md"
    for name, append, body in FENCE.findall(doc.read_text(encoding="utf-8")):
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text((f.read_text() if append else "") + body, encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "tests")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "4 passed" in r.stdout, r.stdout + r.stderr
