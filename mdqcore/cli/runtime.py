"""`mdq pkg apply|rollback`, `mdq state`, `mdq ledger`, `mdq keys`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from .console import LEDGER_OPT, TRUST_OPT, default_trust_path, fail, open_ledger, open_runtime, out


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--cohort", default="default", show_default=True, help="Cohort (gray group) to change.")
@click.option("--canary", default=0.1, show_default=True, type=click.FloatRange(0, 1), help="Canary fraction.")
@click.option("--inputs", type=click.Path(dir_okay=False), help="JSONL of recorded inputs for shadow / canary KPIs.")
@click.option("--rollback", "allow_downgrade", is_flag=True, help="Allow replacing a newer active version (explicit downgrade).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@LEDGER_OPT
@TRUST_OPT
def pkg_apply(file: str, cohort: str, canary: float, inputs: str | None, allow_downgrade: bool, yes: bool,
              ledger_url: str | None, trust_path: str | None) -> None:
    """Hot-plug an MDQ package: check -> stage -> shadow -> canary -> promote, or roll back.

    Every step is written to the ledger. Exit 0 promoted; 1 rejected or rolled back (state
    unchanged); 2 malformed package.

    \b
    Example:
      mdq pkg apply examples/idf-boost.json --canary 0.1 --yes
    """
    from ..errors import DocumentError
    from ..model import load_package
    from ..errors import Rejected

    rt = open_runtime(ledger_url, trust_path)
    try:
        pkg = load_package(file)
    except DocumentError as exc:
        rt.ledger.append("received", cohort=cohort, actor=rt.actor, reason=f"malformed package {file}",
                         payload={"file": str(file)})
        rt.ledger.append("rejected", cohort=cohort, actor=rt.actor, reason=str(exc), payload={})
        fail(str(exc), 2)
    records: list[dict] = []
    if inputs:
        try:
            records = [json.loads(line) for line in Path(inputs).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, ValueError) as exc:
            fail(f"cannot read inputs {inputs}: {exc}", 2)
    if not yes and sys.stdin.isatty():
        click.confirm(f"apply {pkg.ref} ({len(pkg.atoms)} atoms) to cohort {cohort!r}?", abort=True)
    try:
        res = rt.apply(pkg, cohort=cohort, canary=canary, inputs=records, allow_downgrade=allow_downgrade)
    except Rejected as exc:
        fail(str(exc), 1)
    out.print(f"[green]promoted[/] {res.package} in cohort {res.cohort}: {res.changes} changes (ledger #{res.seq})")


@click.command("rollback")
@click.argument("name")
@click.option("--cohort", default="default", show_default=True)
@click.option("--reason", default="operator asked", show_default=True)
@LEDGER_OPT
def pkg_rollback(name: str, cohort: str, reason: str, ledger_url: str | None) -> None:
    """Undo an active package NAME in one cohort; the inverse is recorded in the ledger.

    \b
    Example:
      mdq pkg rollback mdq.idx.ifu.idf-boost --reason "recall dropped"
    """
    from ..errors import Rejected

    rt = open_runtime(ledger_url)
    try:
        seq = rt.rollback(name, cohort=cohort, reason=reason)
    except Rejected as exc:
        fail(str(exc), 1)
    out.print(f"[yellow]rolled back[/] {name} in cohort {cohort} (ledger #{seq})")


@click.group("state")
def state() -> None:
    """Inspect the live control state.

    \b
    Example:
      mdq state show --json
    """


@state.command("show")
@click.option("--cohort", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Canonical JSON (identical to `mdq ledger replay --json`).")
@LEDGER_OPT
def state_show(cohort: str, as_json: bool, ledger_url: str | None) -> None:
    """Show one cohort's active state: packages, parameters and index entries.

    \b
    Example:
      mdq state show --cohort canary
    """
    from ..ledger import replay_ledger
    from ..model.state import ControlState

    states = replay_ledger(open_ledger(ledger_url, readonly=True))
    _print_state(states.get(cohort) or states.get("default") or ControlState(), cohort, as_json)


def _print_state(s: Any, cohort: str, as_json: bool) -> None:
    
    if as_json:
        click.echo(s.canonical())
        return
    from rich.table import Table  # only when printing: plugins import this module for its options

    table = Table(title=f"control state, cohort {cohort} ({len(s)} entries)")
    for c in ("path", "value"):
        table.add_column(c)
    for path in sorted(s.data, key=lambda p: tuple(map(str, p))):
        v = s.data[path]
        table.add_row("/".join(path), v["version"] if path[0] == "package" else json.dumps(v, ensure_ascii=False))
    out.print(table)


@click.group("ledger")
def ledger() -> None:
    """Read, verify and replay the append-only ledger.

    \b
    Examples:
      mdq ledger log --package mdq.idx.ifu.idf-boost
      mdq ledger verify
      mdq ledger replay --at 2026-11-22T18:00:00Z --json
    """


@ledger.command("log")
@click.option("--package", help="Only events of this package.")
@click.option("--json", "as_json", is_flag=True)
@LEDGER_OPT
def ledger_log(package: str | None, as_json: bool, ledger_url: str | None) -> None:
    """List ledger events: who, when, what, why.

    \b
    Example:
      mdq ledger log --package mdq.idx.ifu.idf-boost --json
    """
    events = [e for e in open_ledger(ledger_url, readonly=True).events() if package is None or e.package == package]
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in events], indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"ledger ({len(events)} events)")
    for c in ("#", "time", "event", "cohort", "package", "actor", "reason"):
        table.add_column(c)
    for e in events:
        pkg = f"{e.package}@{e.version}" if e.package else "-"
        table.add_row(str(e.seq), e.ts, e.kind, e.cohort, pkg, e.actor, e.reason[:120])
    out.print(table)


@ledger.command("verify")
@LEDGER_OPT
def ledger_verify(ledger_url: str | None) -> None:
    """Check the hash chain; name the first broken entry (exit 1).

    \b
    Example:
      mdq ledger verify --ledger /var/lib/mdq/ledger.sqlite
    """
    from ..ledger import verify

    rep = verify(open_ledger(ledger_url, readonly=True))
    if not rep.ok:
        fail(f"ledger broken after {rep.checked - 1} good entries: {rep.problem}", 1)
    out.print(f"[green]ledger ok[/]: {rep.checked} entries, hash chain intact")


@ledger.command("replay")
@click.option("--at", "at", help="ISO 8601 time (default: now).")
@click.option("--cohort", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@LEDGER_OPT
def ledger_replay(at: str | None, cohort: str, as_json: bool, ledger_url: str | None) -> None:
    """Rebuild the state active at a past moment from the ledger alone.

    \b
    Example:
      mdq ledger replay --at 2026-11-22T18:00:00Z --json
    """
    from ..errors import LedgerError
    from ..ledger import replay_ledger
    from ..model.state import ControlState

    try:
        states = replay_ledger(open_ledger(ledger_url, readonly=True), at=at)
    except LedgerError as exc:
        fail(str(exc), 2)
    _print_state(states.get(cohort) or states.get("default") or ControlState(), cohort, as_json)


@click.group("keys")
def keys() -> None:
    """Sign packages and manage the trust policy (ed25519).

    \b
    Example:
      mdq keys gen --out ~/.mdq/keys && mdq keys trust ~/.mdq/keys/mdq-*.pub
    """


@keys.command("gen")
@click.option("--out", "directory", required=True, type=click.Path(file_okay=False))
def keys_gen(directory: str) -> None:
    """Generate an ed25519 key pair into a directory.

    \b
    Example:
      mdq keys gen --out keys/
    """
    from ..runtime.signing import generate

    path, pub = generate(directory)
    out.print(f"private key: {path}\npublic key:  {pub}")


@keys.command("sign")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write here (default: in place).")
def keys_sign(file: str, key_path: str, out_path: str | None) -> None:
    """Sign an MDQ package file with a private key.

    \b
    Example:
      mdq keys sign pkg.json --key keys/mdq-0123abcd.pem
    """
    from ..errors import DocumentError
    from ..model import load_package, unstructure
    from ..runtime.signing import SignatureError, load_private, sign

    try:
        pkg = sign(load_package(file), load_private(key_path))
    except (DocumentError, SignatureError) as exc:
        fail(str(exc), 2)
    Path(out_path or file).write_text(json.dumps(unstructure(pkg), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(f"signed {pkg.ref} -> {out_path or file}")


@keys.command("trust")
@click.argument("public")
@TRUST_OPT
def keys_trust(public: str, trust_path: str | None) -> None:
    """Trust a public key (base64 text, or a .pub file); from then on, unsigned packages are refused.

    \b
    Example:
      mdq keys trust keys/mdq-0123abcd.pub
    """
    from ..runtime.signing import SignatureError, TrustPolicy

    text = Path(public).read_text() if Path(public).is_file() else public
    policy = TrustPolicy.load_default(Path(trust_path) if trust_path else default_trust_path())
    try:
        kid = policy.trust(text)
    except SignatureError as exc:
        fail(str(exc), 2)
    out.print(f"trusted key {kid} in {policy.path}")


def attach(main: click.Group, pkg: click.Group) -> None:
    """Add the runtime commands to the `mdq` command."""
    pkg.add_command(pkg_apply)
    pkg.add_command(pkg_rollback)
    for cmd in (state, ledger, keys):
        main.add_command(cmd)
