"""The `mdq` command line (issue #2)."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

import mdqcore
from mdqcore import cli

from .conftest import GOOD_PLUGIN
from .test_model import MALFORMED, SEED


@pytest.fixture
def run(monkeypatch):
    """Run `mdq ARGS` in-process with a fresh plugin registry."""
    def invoke(*args: str, env: dict[str, str] | None = None):
        cli.registry.cache_clear()
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
        cli.registry.cache_clear()
        return result
    return invoke


def test_version(run):
    r = run("--version")
    assert r.exit_code == 0 and mdqcore.__version__ in r.output


@pytest.mark.parametrize("args", [[], ["plugins"], ["plugins", "list"], ["pkg"], ["pkg", "validate"], ["pkg", "schema"]])
def test_every_command_help_has_an_example(run, args):
    r = run(*args, "--help")
    assert r.exit_code == 0 and "Example" in r.output


def test_plugins_list_json_shows_broken_with_reason(run, make_dist):
    make_dist("good", GOOD_PLUGIN, dist="mdq-good", version="1.2.3")
    make_dist("boom", "raise ImportError('needs libfoo')\n")
    r = run("plugins", "list", "--json", env={"MDQ_PLUGINS": "good,boom"})
    assert r.exit_code == 0
    rows = {p["name"]: p for p in json.loads(r.output)}
    assert rows["good"] == {"name": "good", "distribution": "mdq-good", "version": "1.2.3", "status": "ok",
                            "error": None, "capabilities": {"gate": ["good-gate"], "index_feature": ["good-feature"]}}
    assert rows["boom"]["status"] == "broken" and "needs libfoo" in rows["boom"]["error"]
    assert run("plugins", "list", "--strict", env={"MDQ_PLUGINS": "good,boom"}).exit_code == 1
    table = run("plugins", "list", env={"MDQ_PLUGINS": "good,boom"}).output
    assert "mdq-good" in table and "broken" in table


def test_plugins_list_with_none_selected(run):
    r = run("plugins", "list", "--json", env={"MDQ_PLUGINS": "-core"})
    assert r.exit_code == 0 and json.loads(r.output) == []


def test_pkg_validate_valid_and_invalid(run, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(SEED, ensure_ascii=False), encoding="utf-8")
    assert run("pkg", "validate", str(good)).exit_code == 0
    for i, (label, doc, message, path) in enumerate(MALFORMED):
        bad = tmp_path / f"bad{i}.json"
        bad.write_text(json.dumps(doc))  # NaN/Infinity are written as JSON's extension literals
        r = run("pkg", "validate", str(good), str(bad))
        assert r.exit_code == 2, label
        if label in ("non-finite number", "NaN"):  # as text, the JSON reader refuses these literals first
            message = "is not a JSON number"
        assert f"{message}" in r.output and f"@ {path}" in r.output, (label, r.output)
        assert "Traceback" not in r.output


def test_pkg_validate_json_output(run, tmp_path):
    f = tmp_path / "p.json"
    f.write_text('{"name": "x"}')
    r = run("pkg", "validate", "--json", str(f))
    assert r.exit_code == 2
    problems = json.loads(r.output)[0]["problems"]
    assert {"message": "required field missing", "path": "$.semver"} in problems


def test_pkg_schema_prints_the_generated_schema(run):
    r = run("pkg", "schema")
    assert r.exit_code == 0 and json.loads(r.output) == mdqcore.package_schema()


def test_plugins_add_subcommands(run, make_dist):
    make_dist("cmd", """
        import click, mdqcore

        @click.command()
        def hello():
            '''Say hello. Example: mdq hello'''
            click.echo("hello from a plugin")

        @mdqcore.hookimpl
        def register_commands(register):
            register("hello", hello)
    """)
    r = run("hello", env={"MDQ_PLUGINS": "cmd"})
    assert r.exit_code == 0 and r.output == "hello from a plugin\n"
    assert "hello" in run("--help", env={"MDQ_PLUGINS": "cmd"}).output


def test_plugin_command_cannot_shadow_a_builtin(run, make_dist):
    make_dist("shadow", """
        import click, mdqcore
        @mdqcore.hookimpl
        def register_commands(register):
            register("pkg", click.Command("pkg", callback=lambda: click.echo("hijacked")))
    """)
    r = run("pkg", "schema", env={"MDQ_PLUGINS": "shadow"})
    assert r.exit_code == 0 and "hijacked" not in r.output
    assert isinstance(cli.main.commands["pkg"], click.Group)


def test_a_broken_plugins_command_says_why_instead_of_vanishing(run, make_dist):
    # issue #16: a broken plugin's command just vanished ("No such command")
    make_dist("acme", """
        import click, mdqcore
        @click.command()
        def hello():
            click.echo("hi")
        @mdqcore.hookimpl
        def register_commands(register):
            register("hello", hello)
        @mdqcore.hookimpl
        def register_ledger_backends(register):
            raise RuntimeError("needs a config file")
    """)
    r = run("hello", env={"MDQ_PLUGINS": "acme"})
    assert r.exit_code == 2 and "plugin 'acme' is broken" in r.output and "needs a config file" in r.output
    r = run("nosuch", env={"MDQ_PLUGINS": "acme"})
    assert r.exit_code == 2 and "No such command" in r.output and "plugin 'acme' is broken" in r.output
    assert "hello" in run("--help", env={"MDQ_PLUGINS": "acme"}).output
