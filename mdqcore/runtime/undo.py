"""Exact rollback: a package rolled back leaves the state as if it had never been applied.

Each active package's entry records the operations its atoms made, in order, as
[path, op, x, old] with op "set", "add" (sum semiring and deltas) or "max" (max semiring), and
its application number n. A path's value is the fold of every active package's operations on
it, in application order, over the path's baseline (the `old` of the earliest operation). To
roll back package P, each path P touched is recomputed from its baseline with P's operations
left out, so later packages keep exactly their own effect, whatever the semiring:

    baseline 1.0; P sets 5; Q adds 0.5           -> 5.5
    roll back P: fold(Q's ops over 1.0)          -> 1.5   (not 1.0, not 5.0)
"""

from __future__ import annotations

import math
from typing import Any

from ..model.state import ControlState, Diff, Path, fold


def entry(version: str, n: int, ops: list[list[Any]], key: str | None) -> dict[str, Any]:
    """Return a package's state entry (JSON-shaped: the live entry must equal the one replay decodes)."""
    return {"version": version, "n": n, "ops": [[list(p), op, x, old] for p, op, x, old in ops], "key": key}


def next_n(state: ControlState) -> int:
    """Return the application number the next package gets."""
    return 1 + max((v.get("n", 0) for p, v in state.data.items() if p[0] == "package"), default=0)


def undo_diff(state: ControlState, name: str) -> Diff:
    """Return the diff that removes package `name` exactly (see the module docstring)."""
    raw = state.data
    mine = raw[("package", name)]
    by_path: dict[Path, list[tuple[int, int, str, list[Any]]]] = {tuple(o[0]): [] for o in mine.get("ops", ())}
    for path, value in raw.items():
        if path[0] == "package":
            n = value.get("n", 0)
            for i, o in enumerate(value.get("ops", ())):
                chain = by_path.get(tuple(o[0]))
                if chain is not None:
                    chain.append((n, i, path[1], o))
    out: dict[Path, Any] = {("package", name): None}
    rewritten: dict[str, dict[str, Any]] = {}
    for p, chain in by_path.items():
        if len(chain) == 1:  # only this package touched the path: back to what it found
            out[p] = chain[0][3][3]
            continue
        chain.sort(key=lambda c: (c[0], c[1]))
        value = baseline = chain[0][3][3]
        rest = [c for c in chain if c[2] != name]
        for _n, _i, _who, (_p, op, x, _old) in rest:
            value = fold(op, value, x)
        out[p] = value
        if rest and chain[0][2] == name:  # the new earliest operation inherits the baseline
            _n, i, who, _o = rest[0]
            e = rewritten.setdefault(who, {**raw[("package", who)], "ops": list(raw[("package", who)]["ops"])})
            e["ops"][i] = [list(p), e["ops"][i][1], e["ops"][i][2], baseline]
    out.update({("package", who): e for who, e in rewritten.items()})
    get = raw.get
    return [(p, get(p), v) for p, v in out.items() if get(p) != v]


def _same(a: Any, b: Any, index: bool) -> bool:
    if index and a in (None, 0.0) and b in (None, 0.0):
        return True  # an index entry of 0 is the same as no entry
    if isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def inverse_problems(pre: ControlState, post: ControlState, diff: Diff, inverse: list[Any]) -> list[str]:
    """Check explicit inverse atoms strictly: applied to `post` they must give back `pre` on every changed path."""
    from ..errors import PackageError

    try:
        undone, back = post.apply(inverse)
    except PackageError as exc:
        return [f"the inverse atoms are invalid: {p}" for p in exc.problems]
    changed = {p for p, _o, _n in diff if p[0] not in ("package", "history")}
    problems = [f"rollback.inverse touches {'/'.join(p)}, which the package does not change"
                for p, _o, _n in back if p not in changed]
    problems += [f"rollback.inverse leaves {'/'.join(p)} at {undone.get(p)!r}, but the package found it at "
                 f"{pre.get(p)!r}: fix the inverse or use \"...\" (derived)"
                 for p in sorted(changed, key=str) if not _same(undone.get(p), pre.get(p), p[0] == "index")]
    return problems
