"""The `mdq` command. Plugins add sub-commands through the `register_commands` hook."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import DocumentError
from .plugins import load as load_plugins
from .registry import Registry

_WIDTH = None if sys.stdout.isatty() else 160  # pipes and CI logs get wide tables, not 80 columns
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@functools.lru_cache(maxsize=1)
def registry() -> Registry:
    """Load the installed plugins once per process (MDQ_PLUGINS limits which)."""
    return load_plugins()


class MdqGroup(click.Group):
    """A group that also offers the sub-commands plugins register, loading plugins only when asked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List built-in commands, then plugin commands that do not shadow one."""
        extra = [n for n in registry().names("command") if n not in self.commands]
        return sorted(self.commands) + sorted(extra)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return a built-in command, else the plugin command of that name."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        cap = registry().find("command", cmd_name)
        if cap is None or not isinstance(cap.obj, click.Command):
            return None
        return cap.obj


@click.group(cls=MdqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="mdq (mdqcore)")
def main() -> None:
    """mdq: change a discretized LLM pipeline's control plane safely at runtime.

    \b
    Examples:
      mdq plugins list              # which plugins are installed and what they give
      mdq pkg validate pkg.json     # check an MDQ package before applying it
      mdq pkg schema > schema.json  # the JSON Schema of the package format
    """


@main.group()
def plugins() -> None:
    """Inspect installed plugins (entry-point group "mdq.plugins").

    \b
    Example:
      MDQ_PLUGINS=flexattn,gptq mdq plugins list --json
    """


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--strict", is_flag=True, help="Exit 1 if any plugin is broken.")
def plugins_list(as_json: bool, strict: bool) -> None:
    """List plugins: name, distribution, version, capabilities by kind, status.

    A plugin that fails to import, whose hooks do not match their specs, or that raises
    inside a hook is listed as broken with the reason; the others load normally.

    \b
    Example:
      mdq plugins list
      MDQ_PLUGINS= mdq plugins list   # load no plugin at all
    """
    reg = registry()
    infos = sorted(reg.plugins.values(), key=lambda p: p.name)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in infos], indent=2, ensure_ascii=False))
    else:
        table = Table(title=f"mdq plugins ({len(infos)})")
        for col in ("plugin", "distribution", "version", "capabilities", "status"):
            table.add_column(col)
        for p in infos:
            caps = "\n".join(f"{k}: {', '.join(v)}" for k, v in p.as_dict()["capabilities"].items()) or "-"
            status = "[green]ok[/]" if p.status == "ok" else f"[red]broken[/]: {p.error}"
            table.add_row(p.name, p.distribution or "-", p.version or "-", caps, status)
        out.print(table if infos else "no mdq plugins installed (or MDQ_PLUGINS selects none)")
    if strict and any(p.status != "ok" for p in infos):
        sys.exit(1)


@main.group()
def pkg() -> None:
    """Validate, inspect and apply MDQ packages.

    \b
    Example:
      mdq pkg validate examples/idf-boost.json
    """


@pkg.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result per file.")
def pkg_validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check MDQ package FILES; exit 0 only if every one is valid, else 2.

    Every problem is printed as `what @ $.path`, e.g. `expected a number @ $.atoms[0].delta`.

    \b
    Example:
      mdq pkg validate a.json b.json
    """
    from .model import load_package

    results: list[dict[str, Any]] = []
    for f in files:
        try:
            p = load_package(f)
        except DocumentError as exc:
            results.append({"file": f, "valid": False, "problems": [{"message": x.message, "path": x.path}
                                                                    for x in exc.problems]})
            continue
        results.append({"file": f, "valid": True, "package": p.ref, "atoms": len(p.atoms)})
    if as_json:
        click.echo(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            if r["valid"]:
                out.print(f"[green]valid[/]   {r['file']}: {r['package']} ({r['atoms']} atom{'s' * (r['atoms'] != 1)})")
            else:
                out.print(f"[red]invalid[/] {r['file']}:")
                for x in r["problems"]:
                    out.print(f"  {x['message']} @ {x['path']}", markup=False)
    if not all(r["valid"] for r in results):
        sys.exit(2)


@pkg.command("schema")
def pkg_schema() -> None:
    """Print the JSON Schema (draft 2020-12) of the MDQ package format, generated from the models.

    \b
    Example:
      mdq pkg schema > mdq-package.schema.json
    """
    from .model import package_schema

    click.echo(json.dumps(package_schema(), indent=2, ensure_ascii=False))


def _attach() -> None:
    from .versions.commands import compat_cmd, resolve_cmd

    main.add_command(resolve_cmd)
    main.add_command(compat_cmd)
    from .runtime.commands import attach

    attach(main, pkg)


_attach()

if __name__ == "__main__":  # pragma: no cover
    main()
