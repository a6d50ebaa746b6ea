"""`mdq propose`: turn measured marginal values into a reversible candidate package."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click


def propose_package(stats: dict[str, Any], state: Any = None) -> dict[str, Any]:
    """Build a package document from a stats document (see `mdq propose --help`)."""
    import numpy as np

    from mdqcore.model import load_package
    from mdqcore.model.convert import atom_from_json, atom_to_json
    from mdqcore.model.state import atom_path
    from .calculus import balance, clip, propose_deltas

    from cattrs.errors import BaseValidationError

    from mdqcore.model.convert import problems_of

    items = stats["params"]
    atoms = []
    for i, it in enumerate(items):
        try:
            atoms.append(atom_from_json({**it["atom"], "delta": 0.0}))
        except (BaseValidationError, ValueError) as exc:
            where = "; ".join(f"{p.message} @ $.params[{i}].atom{p.path[1:]}" for p in problems_of(exc))
            raise ValueError(where) from None
    v = np.array([float(it["v"]) for it in items])
    if "Lambda" in stats:
        v = balance(v, stats["Lambda"])
    C = np.array(stats["commutators"]) if "commutators" in stats else None
    pi = [float(it.get("pi", 1.0)) for it in items]
    delta = propose_deltas(v, beta=float(stats.get("beta", 0.5)), eta=float(stats.get("eta", 0.05)),
                           lambda_comm=float(stats.get("lambda_comm", 0.0)), C=C, pi=pi)
    if state is not None:
        cur, lo, hi = [], [], []
        for a in atoms:
            b = state.bound(atom_path(a))
            c = state.get(atom_path(a)) or 0.0
            cur.append(c)
            lo.append(b[0] if b else -np.inf)
            hi.append(b[1] if b else np.inf)
        delta = clip(delta, cur, np.nan_to_num(lo, neginf=-1e300), np.nan_to_num(hi, posinf=1e300))
    out_atoms = []
    for a, d in zip(atoms, delta):
        if abs(d) > 1e-12:
            out_atoms.append({**atom_to_json(a), "delta": round(float(d), 12)})
    if not out_atoms:
        raise ValueError("every proposed change is zero after quantization, penalty and clipping: nothing to propose")
    doc = {"name": stats.get("name", "mdq.proposed"), "semver": stats.get("semver", "0.1.0"),
           "scope": stats.get("scope", []), "atoms": out_atoms, "tests": stats.get("tests", ["legal", "budget"]),
           "rollback": {"inverse": [{**a, "delta": -a["delta"]} for a in reversed(out_atoms)]},
           "kpi": {"target": stats.get("kpi", {})},
           "provenance": {"author": stats.get("author", "mdq propose"),
                          "reason": stats.get("reason", "quantized marginal values from measured statistics"),
                          "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    load_package(doc)  # the proposal must itself be a valid package
    return doc


@click.command("propose")
@click.option("--stats", "stats_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write the package here (default: stdout).")
@click.option("--ledger", "ledger_url", envvar="MDQ_LEDGER", help="Clip against this ledger's live state.")
def propose(stats_path: str, out_path: str | None, ledger_url: str | None) -> None:
    """Turn measured marginal values into a reversible candidate package (one atom per change).

    STATS is JSON: {"params": [{"atom": {"type": "Op", "op": "L", "param": "lambda_lex"},
    "v": 0.2, "pi": 0.5}, ...], "beta": 0.5, "eta": 0.05, "lambda_comm": 0.1,
    "commutators": [[...]], "Lambda": [[...]] (optional: solve the balance point first)}.
    Each delta is Q(v) = sgn(v) min(|v|^beta, eta) minus the commutator penalty, clipped
    to the admissible interval in the live state; inverse atoms are filled in.

    \b
    Example:
      mdq propose --stats stats.json --out candidate.json
    """
    from mdqcore.cli.console import err, open_runtime

    try:
        stats = json.loads(Path(stats_path).read_text(encoding="utf-8"))
        state = None
        if ledger_url:
            state = open_runtime(ledger_url).current
        doc = propose_package(stats, state)
    except (ValueError, KeyError, TypeError) as exc:
        err.print(f"cannot propose from {stats_path}: {type(exc).__name__}: {exc}", markup=False)
        sys.exit(2)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out_path:
        Path(out_path).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
