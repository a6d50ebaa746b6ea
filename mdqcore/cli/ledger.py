"""`mdq ledger log|verify|replay|checkpoint|prove|consistency`: readers open the ledger read-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .console import LEDGER_OPT, TRUST_OPT, default_trust_path, fail, open_ledger, out, print_state


@click.group("ledger")
def ledger() -> None:
    """Read, verify, anchor and replay the append-only ledger.

    Every command here but `checkpoint` opens the ledger read-only: it never creates, changes
    or write-locks it, and works on a read-only filesystem.

    \b
    Examples:
      mdq ledger log --package mdq.idx.ifu.idf-boost
      mdq ledger checkpoint --key keys/mdq-<id>.pem --out cp-1.json   # hand cp-1.json to an auditor
      mdq ledger verify --checkpoint cp-1.json
      mdq ledger replay --at 2026-11-22T18:00:00Z --json
    """


@ledger.command("log")
@click.option("--package", help="Only events of this package.")
@click.option("--json", "as_json", is_flag=True)
@LEDGER_OPT
def ledger_log(package: str | None, as_json: bool, ledger_url: str | None) -> None:
    """List ledger events: who, when, what, why (read from the hashed entries).

    \b
    Example:
      mdq ledger log --package mdq.idx.ifu.idf-boost --json
    """
    from ..errors import LedgerError

    try:
        events = [e for e in open_ledger(ledger_url, readonly=True).events() if package is None or e.package == package]
    except LedgerError as exc:
        fail(str(exc), 2)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in events], indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"ledger ({len(events)} events)")
    for c in ("#", "time", "event", "cohort", "package", "actor", "reason"):
        table.add_column(c)
    for e in events:
        pkg = f"{e.package}@{e.version}" if e.package else "-"
        table.add_row(str(e.seq), e.ts, e.kind, e.cohort, pkg, e.actor, e.reason[:160])
    out.print(table)


def _trust(trust_path: str | None) -> Any:
    from ..errors import SignatureError
    from ..signing import TrustPolicy

    try:
        return TrustPolicy.load(trust_path) if trust_path else TrustPolicy.load_default(default_trust_path())
    except SignatureError as exc:
        fail(str(exc), 2)


def _checkpoints(files: tuple[str, ...], trust: Any) -> list[dict[str, Any]]:
    """Read the named checkpoint files and the trusted ones in the config directory; each must be signed."""
    from ..errors import LedgerError
    from ..ledger import check_checkpoint
    from ..model import parse_json

    paths = [Path(f) for f in files] + sorted((default_trust_path().parent / "checkpoints").glob("*.json"))
    out_: list[dict[str, Any]] = []
    for p in paths:
        try:
            out_.append(check_checkpoint(parse_json(p.read_bytes(), source=str(p)), trust, source=f"checkpoint {p}"))
        except OSError as exc:
            fail(f"cannot read checkpoint {p}: {exc.strerror}", 2)
        except (LedgerError, ValueError) as exc:
            fail(str(exc), 2)
    return out_


@ledger.command("verify")
@click.option("--checkpoint", "files", multiple=True, type=click.Path(dir_okay=False),
              help="A signed checkpoint to check the ledger against (repeatable; those in <config>/mdq/checkpoints "
                   "are always used).")
@LEDGER_OPT
@TRUST_OPT
def ledger_verify(files: tuple[str, ...], ledger_url: str | None, trust_path: str | None) -> None:
    """Check every entry from its hashed bytes, and the head against signed checkpoints; exit 1 on damage.

    Checks: no gap in the sequence; each body canonical; every column equal to its body; the
    hash chain; time order; every diff foldable. A checkpoint (ledger id, seq, head hash,
    Merkle root, signed) also reveals cut-off entries, rewritten hashes, forks and a foreign
    tail, which no chain can reveal by itself.

    \b
    Example:
      mdq ledger verify --checkpoint cp-1.json --ledger /var/lib/mdq/ledger.sqlite
    """
    from ..errors import LedgerError
    from ..ledger import verify

    led = open_ledger(ledger_url, readonly=True)
    cps = _checkpoints(files, _trust(trust_path)) if files or (default_trust_path().parent / "checkpoints").is_dir() else []
    try:
        rep = verify(led, cps)
    except LedgerError as exc:
        fail(str(exc), 2)
    if not rep.ok:
        fail(f"ledger broken after {max(rep.checked - 1, 0)} good entries: {rep.problem}", 1)
    anchor = (f"anchored by {len(cps)} checkpoint(s) up to entry {rep.anchored}" if cps else
              "not anchored: without a checkpoint, cut-off newest entries cannot be detected (mdq ledger checkpoint)")
    out.print(f"[green]ledger ok[/]: {rep.checked} entries, hash chain intact, Merkle root {rep.root[:16]}…; {anchor}")


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
    try:
        states = replay_ledger(open_ledger(ledger_url, readonly=True), at=at)
    except LedgerError as exc:
        fail(str(exc), 2)
    print_state(states.get(cohort) or states["default"], cohort, as_json)


@ledger.command("checkpoint")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The private key that signs the checkpoint (its public key must be trusted by verifiers).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Also write the checkpoint to this file.")
@LEDGER_OPT
def ledger_checkpoint(key_path: str, out_path: str | None, ledger_url: str | None) -> None:
    """Sign the current head (ledger id, seq, head hash, Merkle root, time) and record it in the ledger.

    Give the file to another party: `mdq ledger verify --checkpoint FILE` then detects any
    truncation, rewrite or fork of what the checkpoint saw.

    \b
    Example:
      mdq ledger checkpoint --key keys/mdq-0123abcd.pem --out checkpoints/$(date +%F).json
    """
    from ..errors import LedgerError, SignatureError
    from ..ledger import make_checkpoint
    from ..signing import load_private

    led = open_ledger(ledger_url)
    try:
        doc = make_checkpoint(led, load_private(key_path))
        led.append("checkpoint", cohort="default", actor="mdq", reason=f"checkpoint of entry {doc['seq']}",
                   payload=doc)
    except (LedgerError, SignatureError) as exc:
        fail(str(exc), 2)
    text = json.dumps(doc, indent=2) + "\n"
    if out_path:
        Path(out_path).write_text(text, encoding="utf-8")
    out.print(f"checkpoint of entry {doc['seq']} (root {doc['root'][:16]}…) recorded"
              + (f" and written to {out_path}" if out_path else ""))


def _leaves(led: Any, size: int | None) -> list[bytes]:
    from ..ledger import merkle

    leaves = [merkle.leaf_hash(bytes.fromhex(r[8])) for r in led.raw_rows()]
    if size is not None and size > len(leaves):
        fail(f"the ledger has {len(leaves)} entries, fewer than the {size} asked for: it was cut", 1)
    return leaves[:size] if size else leaves


@ledger.command("prove")
@click.argument("seq", type=click.IntRange(1))
@click.option("--checkpoint", "cp_file", type=click.Path(dir_okay=False, exists=True),
              help="Prove inclusion in the tree this checkpoint signed (default: the current head).")
@LEDGER_OPT
@TRUST_OPT
def ledger_prove(seq: int, cp_file: str | None, ledger_url: str | None, trust_path: str | None) -> None:
    """Print the Merkle inclusion proof of entry SEQ (JSON), checked before it is printed.

    \b
    Example:
      mdq ledger prove 42 --checkpoint cp-1.json
    """
    from ..ledger import merkle

    led = open_ledger(ledger_url, readonly=True)
    cp = _checkpoints((cp_file,), _trust(trust_path))[0] if cp_file else None
    leaves = _leaves(led, cp["seq"] if cp else None)
    if seq > len(leaves):
        fail(f"entry {seq} is not in a tree of {len(leaves)} entries", 2)
    root = merkle.root(leaves)
    if cp and root.hex() != cp["root"]:
        fail(f"the ledger's first {cp['seq']} entries do not match the checkpoint's root: it was rewritten", 1)
    path = merkle.inclusion_proof(leaves, seq - 1)
    assert merkle.verify_inclusion(leaves[seq - 1], seq - 1, len(leaves), path, root)
    click.echo(json.dumps({"seq": seq, "size": len(leaves), "leaf": leaves[seq - 1].hex(), "root": root.hex(),
                           "path": [p.hex() for p in path]}, indent=2))


@ledger.command("consistency")
@click.argument("old", type=click.Path(dir_okay=False, exists=True))
@click.argument("new", required=False, type=click.Path(dir_okay=False, exists=True))
@LEDGER_OPT
@TRUST_OPT
def ledger_consistency(old: str, new: str | None, ledger_url: str | None, trust_path: str | None) -> None:
    """Prove that the ledger at checkpoint NEW (default: now) extends the one at checkpoint OLD; exit 1 if not.

    \b
    Example:
      mdq ledger consistency cp-1.json cp-2.json
    """
    from ..ledger import merkle

    led = open_ledger(ledger_url, readonly=True)
    cps = _checkpoints((old, new) if new else (old,), _trust(trust_path))
    leaves = _leaves(led, cps[1]["seq"] if new else None)
    m, n = cps[0]["seq"], len(leaves)
    root = merkle.root(leaves)
    if new and root.hex() != cps[1]["root"]:
        fail(f"the ledger does not match checkpoint {new}: it was rewritten", 1)
    if m > n:
        fail(f"checkpoint {old} saw {m} entries, more than the {n} here: the ledger was cut", 1)
    proof = merkle.consistency_proof(leaves, m)
    if not merkle.verify_consistency(m, n, bytes.fromhex(cps[0]["root"]), root, proof):
        fail(f"the ledger's first {m} entries are not what checkpoint {old} signed: rewritten or forked", 1)
    click.echo(json.dumps({"old": m, "new": n, "old_root": cps[0]["root"], "new_root": root.hex(),
                           "proof": [p.hex() for p in proof], "consistent": True}, indent=2))
