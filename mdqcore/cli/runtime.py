"""`mdq pkg apply|rollback`, `mdq state show`, `mdq policy show|set`, `mdq keys`."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from .console import LEDGER_OPT, TRUST_OPT, default_trust_path, fail, open_ledger, open_runtime, out, print_state


@click.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--cohort", default="default", show_default=True, help="Cohort (gray group) to change.")
@click.option("--canary", type=click.FloatRange(0, 1), help="Canary fraction (default: the policy's).")
@click.option("--inputs", type=click.Path(dir_okay=False), help="JSONL of recorded inputs for shadow / canary KPIs.")
@click.option("--rollback", "allow_downgrade", is_flag=True,
              help="Allow an older or rolled-back version (an explicit downgrade; needs --reason).")
@click.option("--reason", help="Why; recorded in the ledger (required with --rollback).")
@click.option("--live", is_flag=True, help="After shadow, hand the canary to the servers (`mdq serve`) following this "
                                            "ledger: they route live requests to it, measure, and promote or roll back.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="With --live: wait for the servers' decision.")
@click.option("--timeout", default=900.0, show_default=True, type=click.FloatRange(1), help="With --live --wait: give "
              "up waiting after this many seconds (the rollout goes on).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@LEDGER_OPT
@TRUST_OPT
def pkg_apply(file: str, cohort: str, canary: float | None, inputs: str | None, allow_downgrade: bool,
              reason: str | None, live: bool, wait: bool, timeout: float, yes: bool, ledger_url: str | None,
              trust_path: str | None) -> None:
    """Hot-plug an MDQ package: check -> stage -> shadow -> canary -> promote, or roll back.

    Every step is written to the ledger. The operator policy (`mdq policy show`) decides the
    mandatory gates, the KPI ceilings and how many recorded inputs shadow analysis needs.
    Without --live the canary is analysed on the recorded inputs routed to it; with --live it
    runs on live traffic in every `mdq serve` following this ledger (see docs/serving.md).
    Exit 0 promoted (or, --live --no-wait, canary started); 1 rejected or rolled back (state
    unchanged); 2 malformed package, or one naming what no installed plugin declares, or a
    ledger / trust problem; 3 --live --wait gave up waiting (the rollout goes on).

    \b
    Examples:
      mdq pkg apply examples/idf-boost.json --inputs examples/inputs.jsonl --yes
      mdq pkg apply examples/idf-boost.json --inputs examples/inputs.jsonl --live --canary 0.2 --yes
    """
    from ..errors import DocumentError, LedgerError, PolicyError, Rejected
    from ..model import load_package
    from ..runtime import check_against

    rt = open_runtime(ledger_url, trust_path)
    try:
        limits = rt.policy.limits
        try:
            pkg = load_package(file, limits=limits)
            check_against(rt.registry, pkg, rt.base, source=file)
        except DocumentError as exc:
            raw = Path(file).read_bytes() if Path(file).is_file() else b""
            seen = {"file": str(file), "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}  # never the text
            rt.ledger.append("received", cohort=cohort, actor=rt.actor, reason=f"malformed package {file}", payload=seen)
            rt.ledger.append("rejected", cohort=cohort, actor=rt.actor, reason=str(exc),
                             payload={"problems": [str(p) for p in exc.problems][:100]})
            fail(str(exc), 2)
        records = _inputs(inputs)
        if not yes and sys.stdin.isatty():
            click.confirm(f"apply {pkg.ref} ({len(pkg.atoms)} atoms) to cohort {cohort!r}?", abort=True)
        if live:
            seq = rt.begin_rollout(pkg, cohort=cohort, fraction=canary, inputs=records,
                                   allow_downgrade=allow_downgrade, reason=reason)
            out.print(f"[cyan]canary started[/] {pkg.ref} in cohort {cohort} (ledger #{seq}): servers now route "
                      f"{rt.rollouts[cohort]['fraction']:.0%} of requests to it; `mdq rollout status` shows the analysis")
            if wait:
                _await(rt, seq, timeout)
            return
        res = rt.apply(pkg, cohort=cohort, canary=canary, inputs=records, allow_downgrade=allow_downgrade,
                       reason=reason)
    except Rejected as exc:
        fail(str(exc), 1)
    except (LedgerError, PolicyError) as exc:
        fail(str(exc), 2)
    finally:
        rt.ledger.close()
    out.print(f"[green]promoted[/] {res.package} in cohort {res.cohort}: {res.changes} changes (ledger #{res.seq})")


def _await(rt: Any, rollout: int, timeout: float) -> None:
    """Follow the ledger until the servers conclude `rollout`; exit 0 promoted, 1 rolled back, 3 still running."""
    import time

    deadline, seen = time.monotonic() + timeout, rollout
    while time.monotonic() < deadline:
        for ev in rt.ledger.events(seen):
            seen = ev.seq
            if ev.payload.get("rollout") != rollout:
                continue
            if ev.kind == "canary_started":  # re-planned on a newer state: follow the new canary
                rollout = ev.seq
                out.print(f"  #{ev.seq} {ev.reason}", markup=False)
            elif ev.kind == "analysis":
                out.print(f"  #{ev.seq} {ev.reason}", markup=False)
            elif ev.kind in ("promoted", "rolled_back", "aborted"):
                colour = "green" if ev.kind == "promoted" else "red"
                out.print(f"[{colour}]{ev.kind}[/] {ev.package}@{ev.version} (ledger #{ev.seq}): ", end="")
                out.print(ev.reason, markup=False)
                sys.exit(0 if ev.kind == "promoted" else 1)
        time.sleep(0.2)
    fail(f"no decision within {timeout:g} s: the rollout goes on; watch it with `mdq rollout status`", 3)


def _inputs(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    try:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        fail(f"cannot read inputs {path}: {exc}", 2)
    bad = [i for i, r in enumerate(rows, 1) if not isinstance(r, dict)]
    if bad:
        fail(f"inputs {path}: line {bad[0]} is not a JSON object", 2)
    return rows


@click.command("rollback")
@click.argument("name")
@click.option("--cohort", default="default", show_default=True)
@click.option("--reason", default="operator asked", show_default=True)
@LEDGER_OPT
def pkg_rollback(name: str, cohort: str, reason: str, ledger_url: str | None) -> None:
    """Undo an active package NAME in one cohort, exactly; the change is recorded in the ledger.

    The state afterwards is what it would be had the package never been applied, whatever was
    applied after it. The version is remembered as rolled back: applying it again needs --rollback.

    \b
    Example:
      mdq pkg rollback mdq.idx.ifu.idf-boost --reason "recall dropped"
    """
    from ..errors import LedgerError, Rejected

    rt = open_runtime(ledger_url)
    try:
        seq = rt.rollback(name, cohort=cohort, reason=reason)
    except Rejected as exc:
        fail(str(exc), 1)
    except LedgerError as exc:
        fail(str(exc), 2)
    finally:
        rt.ledger.close()
    out.print(f"[yellow]rolled back[/] {name} in cohort {cohort} (ledger #{seq})")


@click.group("state")
def state() -> None:
    """Inspect the live control state (read-only).

    \b
    Example:
      mdq state show --json
    """


@state.command("show")
@click.option("--cohort", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Canonical JSON (identical to `mdq ledger replay --json`).")
@LEDGER_OPT
def state_show(cohort: str, as_json: bool, ledger_url: str | None) -> None:
    """Show one cohort's state as the ledger records it: packages, parameters and index entries.

    \b
    Example:
      mdq state show --cohort canary
    """
    from ..errors import LedgerError
    from ..ledger import replay_ledger

    try:
        states = replay_ledger(open_ledger(ledger_url, readonly=True))
    except LedgerError as exc:
        fail(str(exc), 2)
    print_state(states.get(cohort) or states["default"], cohort, as_json)


@click.group("policy")
def policy() -> None:
    """Show or set the operator policy every package must pass (recorded, signed, in the ledger).

    \b
    Example:
      mdq policy show --json > policy.json && mdq policy set policy.json --key keys/mdq-<id>.pem
    """


@policy.command("show")
@click.option("--json", "as_json", is_flag=True)
@LEDGER_OPT
@TRUST_OPT
def policy_show(as_json: bool, ledger_url: str | None, trust_path: str | None) -> None:
    """Print the policy in effect (or the defaults, when none was set); exit 2 if it cannot be trusted.

    \b
    Example:
      mdq policy show --json
    """
    from ..errors import LedgerError, NoLedgerError, PolicyError, SignatureError
    from ..ledger import open_ledger as _open
    from ..runtime import Policy, Runtime, TrustPolicy
    from .console import registry

    try:
        trust = TrustPolicy.load(trust_path) if trust_path else TrustPolicy.load_default(default_trust_path())
        rt = Runtime(registry(), _open(ledger_url, registry(), readonly=True), trust=trust)
        pol = rt.policy if rt.base.get(("policy",)) is not None else None
    except NoLedgerError:
        pol = None
    except (LedgerError, PolicyError, SignatureError) as exc:
        fail(str(exc), 2)

    doc = (pol or Policy()).to_json()
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    out.print(("the policy in effect" if pol else "no policy set: the defaults apply") + ":")
    out.print(json.dumps(doc, indent=2, ensure_ascii=False), markup=False)


@policy.command("set")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--key", "key_path", type=click.Path(dir_okay=False, exists=True),
              help="Sign with this private key (required once any key is trusted).")
@click.option("--reason", required=True, help="Why the policy changes; recorded in the ledger.")
@LEDGER_OPT
@TRUST_OPT
def policy_set(file: str, key_path: str | None, reason: str, ledger_url: str | None, trust_path: str | None) -> None:
    """Make FILE (JSON; keys as `mdq policy show --json` prints) the policy in effect for every cohort.

    Unknown keys, wrong types and a policy that would lock every package out (unsigned while
    keys are trusted) are refused with exit 2; nothing is recorded then.

    \b
    Example:
      mdq policy set policy.json --key keys/mdq-0123abcd.pem --reason "mandatory blacklist gate"
    """
    from ..errors import DocumentError, LedgerError, PolicyError, SignatureError
    from ..model import parse_json
    from ..signing import load_private

    rt = open_runtime(ledger_url, trust_path)
    try:
        doc = parse_json(Path(file).read_bytes(), source=file)
        seq = rt.set_policy(doc, load_private(key_path) if key_path else None, reason)
    except (DocumentError, PolicyError, SignatureError, LedgerError) as exc:
        fail(str(exc), 2)
    finally:
        rt.ledger.close()
    out.print(f"policy set (ledger #{seq})")


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
    from ..signing import generate

    try:
        path, pub = generate(directory)
    except OSError as exc:  # a parent that is a file, no permission, a full disk: say so, no traceback
        fail(f"cannot write a key into {directory}: {exc.strerror or exc}; choose a directory you can write to")
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
    from ..signing import SignatureError, load_private, sign

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
    from ..signing import SignatureError, TrustPolicy

    text = Path(public).read_text() if Path(public).is_file() else public
    policy = TrustPolicy.load_default(Path(trust_path) if trust_path else default_trust_path())
    try:
        kid = policy.trust(text)
    except SignatureError as exc:
        fail(str(exc), 2)
    out.print(f"trusted key {kid} in {policy.path}")


def attach(main: click.Group, pkg: click.Group) -> None:
    """Add the runtime commands to the `mdq` command."""
    from .ledger import ledger

    pkg.add_command(pkg_apply)
    pkg.add_command(pkg_rollback)
    for cmd in (state, ledger, policy, keys):
        main.add_command(cmd)
