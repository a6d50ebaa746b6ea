"""`mdq resolve` and `mdq compat`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import DocumentError, RangeError
from .console import err, fail, out, registry


@click.command("resolve")
@click.option("--index", "index_path", type=click.Path(dir_okay=False), help="Index JSON of available versions.")
@click.option("--require", "requires", multiple=True, metavar="[COHORT:]NAME@RANGE",
              help="A root requirement; prefix COHORT: to apply it to one cohort only. Repeatable.")
@click.option("--cohort", "cohorts", multiple=True, help="Also resolve this cohort (gray group). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--lock", "lock_out", type=click.Path(dir_okay=False), help="Write the result as a lock file.")
@click.option("--check-lock", "lock_in", type=click.Path(dir_okay=False), help="Re-check a lock against the index.")
@click.option("--installed", is_flag=True, help="Check installed plugins' requirements on the kernel and each other.")
def resolve_cmd(index_path: str | None, requires: tuple[str, ...], cohorts: tuple[str, ...], as_json: bool,
                lock_out: str | None, lock_in: str | None, installed: bool) -> None:
    """Pick one version per name satisfying the requirements (newest admissible first).

    Exit 0 with the chosen versions; 1 with a step-by-step explanation when no choice
    satisfies them; 2 on a malformed index or requirement (with `@ $.path`).

    \b
    Examples:
      mdq resolve --index index.json --require 'mdq-gptq@^0.2' --require 'canary:mdq-gptq@^0.3'
      mdq resolve --index index.json --require 'a@^1' --lock mdq.lock
      mdq resolve --index index.json --check-lock mdq.lock
      mdq resolve --installed
    """
    if installed:
        _installed(as_json)
        return
    if not index_path:
        raise click.UsageError("give --index INDEX.json (or --installed)")
    from ..versions.index import Index

    try:
        index = Index.load(index_path)
    except DocumentError as exc:
        fail(str(exc), 2)
    if lock_in:
        _check_lock(index, lock_in, as_json)
    else:
        _resolve(index, requires, cohorts, lock_out, as_json)


def _check_lock(index: Any, lock_in: str, as_json: bool) -> None:
    """`mdq resolve --check-lock`: does a lock still hold against the index? Exit 0 / 1 / 2."""
    from .lock import check_lock

    try:
        lock = json.loads(Path(lock_in).read_text(encoding="utf-8"))
        problems = check_lock(lock, index)
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        fail(f"cannot read lock {lock_in}: {exc}", 2)
    if as_json:
        click.echo(json.dumps({"lock": lock_in, "ok": not problems, "problems": problems}, indent=2))
    else:
        out.print(f"lock {lock_in}: " + ("[green]holds[/]" if not problems else "[red]broken[/]"))
        for p in problems:
            out.print(f"  {p}", markup=False)
    sys.exit(1 if problems else 0)


def _resolve(index: Any, requires: tuple[str, ...], cohorts: tuple[str, ...], lock_out: str | None,
             as_json: bool) -> None:
    """`mdq resolve --require ...`: choose versions per cohort, explain a failure, optionally write a lock."""
    from .lock import make_lock
    from ..versions.resolver import Requirement, ResolutionImpossible, resolve_cohorts

    if not requires:
        raise click.UsageError("give at least one --require NAME@RANGE")
    try:
        reqs = [Requirement.parse(r) for r in requires]
    except (ValueError, RangeError) as exc:
        fail(f"bad requirement: {exc}", 2)
    try:
        chosen = resolve_cohorts(index, reqs, cohorts)
    except ResolutionImpossible as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "explanation": exc.explanation.splitlines()}, indent=2))
        else:
            err.print("[red]version solving failed[/]")
            err.print(exc.explanation, markup=False)
        sys.exit(1)
    if lock_out:
        Path(lock_out).write_text(json.dumps(make_lock(index, reqs, chosen), indent=2) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps({"ok": True, "cohorts": chosen}, indent=2))
        return
    from rich.table import Table

    for cohort, pins in chosen.items():
        table = Table(title=f"cohort {cohort}")
        table.add_column("name")
        table.add_column("version")
        for n, v in pins.items():
            table.add_row(n, v)
        out.print(table)
    if lock_out:
        out.print(f"wrote {lock_out}")


def _installed(as_json: bool) -> None:
    from .installed import check_installed

    checks = check_installed()
    bad = [c for c in checks if not c.ok]
    if as_json:
        click.echo(json.dumps([{"distribution": c.distribution, "version": c.version, "requirement": c.requirement,
                                "installed": c.installed, "ok": c.ok} for c in checks], indent=2))
    else:
        for c in checks:
            out.print(("[green]ok[/]     " if c.ok else "[red]broken[/] ") + c.explain(), markup=True)
        out.print(f"{len(checks)} requirement(s) checked, {len(bad)} broken")
    if bad:
        sys.exit(1)


def _decision_dict(d: object) -> dict:
    import attrs

    return attrs.asdict(d)  # versions, verdict, findings[rule, origin, verdict, reason]


def _pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for p in pairs:
        axis, sep, version = p.partition("=")
        if not sep or not axis or not version:
            raise click.BadParameter(f"{p!r}: write AXIS=VERSION, e.g. operator=2.1.0")
        import semver

        if not semver.Version.is_valid(version):
            raise click.BadParameter(f"{p!r}: {version!r} is not a SemVer version")
        out[axis] = version
    return out


@click.command("compat")
@click.option("--check", is_flag=True, help="Decide one combination given as AXIS=VERSION arguments.")
@click.option("--axis", "axes", multiple=True, metavar="AXIS=V1,V2",
              help="Versions to tabulate for one axis (default: versions installed capabilities declare).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.argument("pairs", nargs=-1)
def compat_cmd(check: bool, axes: tuple[str, ...], as_json: bool, pairs: tuple[str, ...]) -> None:
    """Show the compatibility matrix, or decide one combination.

    Axes are `operator` (operator set version), `index` (index schema version) and `gate`
    (gate policy version); plugins add rules through the `register_compat_rules` hook.
    With --check the exit code is 0 ok, 3 warn, 1 reject, and the deciding rules are printed.

    \b
    Examples:
      mdq compat
      mdq compat --axis operator=1.0.0,2.1.0 --axis index=3.0.0 --json
      mdq compat --check operator=2.1.0 index=3.0.0 gate=1.4.0
    """
    from ..versions.compat import AXES, evaluate, known_versions, matrix

    reg = registry()
    if check:
        if not pairs:
            raise click.UsageError("--check needs AXIS=VERSION arguments, e.g. operator=2.1.0 index=3.0.0")
        d = evaluate(reg, _pairs(pairs))
        if as_json:
            click.echo(json.dumps(_decision_dict(d), indent=2, ensure_ascii=False))
        else:
            out.print(d.explain(), markup=False)
        sys.exit({"ok": 0, "warn": 3, "reject": 1}[d.verdict])
    if pairs:
        raise click.UsageError("AXIS=VERSION arguments need --check")
    versions = known_versions(reg)
    for a in axes:
        name, _, vs = a.partition("=")
        if not vs:
            raise click.BadParameter(f"{a!r}: write AXIS=V1,V2")
        versions[name] = [v for v in vs.split(",") if v]
        _pairs(tuple(f"{name}={v}" for v in versions[name]))
    cells = matrix(reg, versions)
    if as_json:
        click.echo(json.dumps([_decision_dict(c) for c in cells], indent=2, ensure_ascii=False))
        return
    names = [a for a in list(AXES) + [a for a in versions if a not in AXES] if versions.get(a)]
    from rich.table import Table

    table = Table(title=f"compatibility matrix ({len(reg.of_kind('compat_rule'))} rules)")
    for n in names + ["verdict", "why"]:
        table.add_column(n)
    colour = {"ok": "green", "warn": "yellow", "reject": "red"}
    for c in cells:
        why = "; ".join(f"{f.rule}: {f.reason}" for f in c.deciding()) or "no rule applies"
        table.add_row(*(c.versions[n] for n in names), f"[{colour[c.verdict]}]{c.verdict}[/]", why)
    out.print(table if cells else "no versions known on any axis: install plugins or pass --axis AXIS=V1,V2")


def attach(main: click.Group) -> None:
    """Add `mdq resolve` and `mdq compat` to the `mdq` command."""
    main.add_command(resolve_cmd)
    main.add_command(compat_cmd)
