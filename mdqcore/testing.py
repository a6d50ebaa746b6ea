"""A pytest plugin for plugin authors: load one plugin in isolation, with a fresh registry.

Installed with mdqcore (entry point `pytest11`), so its fixtures are available in any test:

    def test_my_gate(mdq_load_plugin):
        import my_plugin
        registry = mdq_load_plugin(my_plugin)
        assert registry.get("gate", "atom-budget").obj(package, None).ok
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .errors import PluginError
from .plugins import Loader
from .registry import Registry


def load_isolated(obj: Any, name: str = "plugin-under-test", *, allow_broken: bool = False,
                  registry: Registry | None = None) -> Registry:
    """Load one plugin object into a fresh (or given) registry without scanning entry points."""
    loader = Loader(registry)
    info = loader.load_object(obj, name)
    if info.status != "ok" and not allow_broken:
        raise PluginError(name, info.error or "broken")
    return loader.registry


@pytest.fixture
def mdq_registry() -> Registry:
    """Give an empty registry, unaffected by whatever plugins are installed."""
    return Registry()


@pytest.fixture
def mdq_load_plugin() -> Callable[..., Registry]:
    """Give a function that loads one plugin object in isolation and returns its registry.

    It raises PluginError if the plugin is broken, unless called with allow_broken=True.
    """
    return load_isolated


@pytest.fixture
def mdq_cli_plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Give use(*names) limiting the `mdq` CLI to the named plugins (MDQ_PLUGINS; core implied), freshly loaded.

    Names may be given as separate arguments or comma-separated: use("core", "acme") == use("core,acme").
    The CLI loads plugins once per process; this clears that cache before and after the test.
    """
    from .cli import console

    def use(*names: str) -> None:
        monkeypatch.setenv("MDQ_PLUGINS", ",".join(n.strip() for arg in names for n in arg.split(",") if n.strip()))
        console.registry.cache_clear()

    yield use
    console.registry.cache_clear()


def run_readme_python(readme: Path, workdir: Path) -> tuple[int, str]:
    """Run every ```python block of a Markdown file as its own script in a child process; return (count, stdout).

    Docs that run: a failing block raises AssertionError with its stderr.
    """
    import re
    import subprocess
    import sys

    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(encoding="utf-8"), re.S)
    out = ""
    for i, code in enumerate(blocks):
        script = workdir / f"readme_block{i}.py"
        script.write_text(code, encoding="utf-8")
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=workdir)
        if r.returncode != 0:
            raise AssertionError(f"{readme.name} python block {i} failed:\n{r.stderr}")
        out += r.stdout
    return len(blocks), out
