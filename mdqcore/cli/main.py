"""The `mdq` group, `mdq plugins list` and `mdq pkg validate|schema`; plugins add sub-commands lazily."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import DocumentError, PluginError
from . import runtime, versions
from .console import err, fail, out, registry


class MdqGroup(click.Group):
    """A group that also offers the sub-commands plugins register, importing each only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """List built-in commands, then plugin commands that do not shadow one, then broken plugins' commands."""
        reg = registry()
        extra = {n for n in reg.names("command") if n not in self.commands}
        extra |= {c for p in reg.plugins.values() if p.status != "ok" for c in p.commands if c not in self.commands}
        return sorted(self.commands) + sorted(extra)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Return a built-in command, else the plugin command of that name (imported now)."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        reg = registry()
        cap = reg.find("command", cmd_name)
        if cap is None:
            owner = next((p for p in reg.plugins.values() if cmd_name in p.commands), None)
            if owner is not None:
                return _unavailable(cmd_name, f"plugin {owner.name!r} is broken: {owner.error}")
            return None
        try:
            cmd = cap.obj
        except PluginError as exc:
            return _unavailable(cmd_name, str(exc))
        if not isinstance(cmd, click.Command):
            return _unavailable(cmd_name, f"plugin {cap.plugin!r} registered command {cmd_name!r} as "
                                          f"{type(cmd).__name__}, not a click command")
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """Resolve as click does, but name broken plugins when a command is unknown."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            bad = [f"plugin {p.name!r} is broken: {p.error}" for p in registry().plugins.values() if p.status != "ok"]
            if bad and "No such command" in str(exc):
                raise click.UsageError(f"{exc.message}\n" + "\n".join(bad), ctx) from None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands with their one-line help, without importing plugin commands."""
        reg = registry()
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit=formatter.width)))
                continue
            cap = reg.find("command", name)
            if cap is None:
                rows.append((name, "(unavailable: its plugin is broken)"))
            elif cap.lazy:  # the registered one-liner: importing the command only to describe it is what made --help slow
                rows.append((name, cap.meta.get("help", "")))
            else:
                rows.append((name, getattr(cap.obj, "get_short_help_str", lambda **_: "")(limit=formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _unavailable(name: str, reason: str) -> click.Command:
    """A stand-in command that explains why the real one cannot run."""
    def explain() -> None:
        fail(f"mdq {name}: {reason}", 2)

    return click.Command(name, callback=explain, help=f"Unavailable: {reason}",
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


@click.group(cls=MdqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", "-V", package_name="mdqcore", prog_name="mdq (mdqcore)")
def main() -> None:
    """mdq: change a discretized LLM pipeline's control plane safely at runtime.

    \b
    Examples:
      mdq plugins list              # which plugins are installed and what they give
      mdq pkg validate pkg.json     # check an MDQ package before applying it
      mdq pkg schema > schema.json  # the JSON Schema of the package format

    MDQ_PLUGINS=a,b loads only plugins a and b (and the kernel's `core`; `-core` drops it).
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
@click.option("--check", is_flag=True, help="Also import every lazy reference now; exit 1 if any fails.")
def plugins_list(as_json: bool, strict: bool, check: bool) -> None:
    """List plugins: name, distribution, version, capabilities by kind, status.

    A plugin that fails to import, whose hooks do not match their specs, or that raises
    inside a hook is listed as broken with the reason; the others load normally. Capabilities
    are imported on first use; --check imports every one now, so CI catches a reference
    that does not resolve.

    \b
    Example:
      mdq plugins list --check
      MDQ_PLUGINS=-core mdq plugins list   # load no plugin at all
    """
    from ..plugins import check_references

    reg = registry()
    infos = sorted(reg.plugins.values(), key=lambda p: p.name)
    failures = check_references(reg) if check else []
    if as_json:
        doc: Any = [p.as_dict() for p in infos]
        if check:
            doc = {"plugins": doc, "unresolved": [str(f) for f in failures]}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        from rich.table import Table

        table = Table(title=f"mdq plugins ({len(infos)})")
        for col in ("plugin", "distribution", "version", "capabilities", "status"):
            table.add_column(col)
        for p in infos:
            caps = "\n".join(f"{k}: {', '.join(v)}" for k, v in p.as_dict()["capabilities"].items()) or "-"
            status = "[green]ok[/]" if p.status == "ok" else f"[red]broken[/]: {p.error}"
            table.add_row(p.name, p.distribution or "-", p.version or "-", caps, status)
        out.print(table if infos else "no mdq plugins installed (or MDQ_PLUGINS selects none)")
        for f in failures:
            err.print(f"unresolved: {f}", markup=False)
        if check and not failures:
            out.print(f"every lazy reference resolves ({len(reg)} capabilities)")
    if failures or (strict and any(p.status != "ok" for p in infos)):
        sys.exit(1)


@main.group()
def pkg() -> None:
    """Validate, inspect, apply and roll back MDQ packages.

    \b
    Example:
      mdq pkg validate examples/idf-boost.json
    """


@pkg.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON result per file.")
@click.option("--offline", is_flag=True, help="Check the schema only, not against the installed plugins.")
def pkg_validate(files: tuple[str, ...], as_json: bool, offline: bool) -> None:
    """Check MDQ package FILES; exit 0 only if every one is valid, else 2.

    Every problem is printed as `what @ $.path`, e.g. `expected a number @ $.atoms[0].delta`.
    By default each package is also checked against the installed plugins (unknown operator,
    parameter, gate or index feature); --offline checks the schema alone.

    \b
    Example:
      mdq pkg validate a.json b.json
    """
    from ..model import load_package
    from ..runtime import check_against

    results: list[dict[str, Any]] = []
    for f in files:
        try:
            p = load_package(f)
            if not offline:
                check_against(registry(), p, source=f)
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
    from ..model import package_schema

    click.echo(json.dumps(package_schema(), indent=2, ensure_ascii=False))


runtime.attach(main, pkg)
versions.attach(main)

if __name__ == "__main__":  # pragma: no cover
    main()
