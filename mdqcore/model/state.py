"""ControlState: an immutable snapshot of a pipeline's control plane, and how atoms change it.

A state is a flat mapping from paths to values, so that every change is a diff
`[(path, old, new), ...]` that the ledger can store and replay exactly:

    ("param", "Op", op, name)        operator gate / weight / switch
    ("param", "Len", policy, name)   L_h / L_p windows and their costs ("" = default policy)
    ("param", "Gate", gate, name)    gate thresholds and priorities
    ("index", feature, seg)          phi_k(seg): one index entry
    ("target", feature, seg)         alias / synonym target of an index entry
    ("fweight", feature)             w_k, the feature family's weight in I(seg)
    ("semiring", feature)            "sum" or "max": how Idx atoms of that family accumulate
    ("bound", kind, a, name)         admissible interval [lo, hi] of a parameter
    ("package", name)                {"version", "n", "ops", ...}: an active package and what it did
    ("history", name)                versions ever applied, rolled back, and the key that signs the name
    ("policy",)                      the operator policy in effect (shared by every cohort)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..errors import PackageError, Problem
from .atoms import Atom, Idx, Len, Op

Path = tuple[str, ...]
Diff = list[tuple[Path, Any, Any]]

# tests > length > lexical > semantic: the order atoms of one package are applied in (Idx atoms of a
# semantic feature come last, 3)
PRIORITY = {"Gate": 0, "Len": 1, "Op": 2, "Idx": 2}
SEMANTIC_FEATURES = frozenset({"vector", "semantic", "embedding"})


def atom_path(atom: Atom) -> Path:
    """Return the state path an atom changes."""
    if isinstance(atom, Idx):
        return ("index", atom.feature, atom.seg)
    if isinstance(atom, Op):
        return ("param", "Op", atom.op, atom.param)
    if isinstance(atom, Len):
        return ("param", "Len", atom.policy or "", atom.param)
    return ("param", "Gate", atom.gate, atom.param)


def fold(op: str, cur: Any, x: Any) -> Any:
    """Apply one recorded operation: "set" x, "add" x (sum semiring, deltas) or "max" x."""
    if op == "set":
        return x
    base = 0.0 if cur is None else cur
    return base + x if op == "add" else max(base, x)


def patch(data: dict[Path, Any], diff: Iterable[tuple[Sequence[str], Any, Any]]) -> None:
    """Apply a diff to a path -> value dict in place: each path takes its new value; a new value None deletes it."""
    for path, _old, new in diff:
        if new is None:
            data.pop(tuple(path), None)
        else:
            data[tuple(path)] = new


class ControlState:
    """An immutable snapshot; `apply` returns a new one. Readers never lock: they hold a reference."""

    __slots__ = ("_raw", "_data", "seq")

    def __init__(self, data: Mapping[Path, Any] | None = None, seq: int = 0) -> None:
        self._raw: dict[Path, Any] = dict(data or {})  # never mutated after construction
        self._data = MappingProxyType(self._raw)
        self.seq = seq  # ledger sequence number of the event that produced this snapshot

    # -- reading ------------------------------------------------------------------------------
    @property
    def data(self) -> Mapping[Path, Any]:
        """The read-only path -> value mapping."""
        return self._data

    def get(self, path: Path, default: Any = None) -> Any:
        """Return the value at `path`."""
        return self._data.get(path, default)

    def param(self, kind: str, owner: str, name: str, default: Any = None) -> Any:
        """Return a parameter, e.g. state.param("Op", "L", "lambda_lex")."""
        return self._data.get(("param", kind, owner, name), default)

    def bound(self, path: Path) -> tuple[float, float] | None:
        """Return the admissible interval of a parameter path, if one is declared."""
        b = self._data.get(("bound", *path[1:]))
        return None if b is None else (b[0], b[1])

    def index(self, feature: str, seg: str, default: float = 0.0) -> float:
        """Return phi_feature(seg)."""
        return self._data.get(("index", feature, seg), default)

    def I(self, seg: str) -> float:  # noqa: E743 - the note's name for the index functional
        """Return the index functional I(seg) = sum_k w_k phi_k(seg)."""
        return sum((self._data.get(("fweight", p[1]), 1.0) * v for p, v in self._data.items()
                    if p[0] == "index" and p[2] == seg), 0.0)

    def packages(self) -> dict[str, str]:
        """Return the active packages as {name: version}."""
        return {p[1]: v["version"] for p, v in self._data.items() if p[0] == "package"}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ControlState) and dict(self._data) == dict(other._data)

    def __hash__(self) -> int:  # pragma: no cover - states are compared, not hashed
        raise TypeError("ControlState is not hashable")

    def __len__(self) -> int:
        return len(self._data)

    # -- changing -----------------------------------------------------------------------------
    def apply_diff(self, diff: Iterable[tuple[Path, Any, Any]], seq: int | None = None) -> ControlState:
        """Return a new state with a diff applied (new value None deletes the path)."""
        data = dict(self._raw)
        patch(data, diff)
        return ControlState(data, self.seq if seq is None else seq)

    def plan(self, atoms: Iterable[Atom]) -> Diff:
        """Compute the diff that applying `atoms` would make (nothing is changed); see `plan_ops`."""
        return self.plan_ops(atoms)[0]

    def plan_ops(self, atoms: Iterable[Atom]) -> tuple[Diff, list[list[Any]]]:
        """Compute (diff, ops) of applying `atoms`: ops are [path, "set"|"add"|"max", x, old] in the order applied.

        Atoms are applied in priority order (tests > length > lexical > semantic); identical
        atoms are applied once; two atoms setting one path to different values are an error. A
        value outside its admissible interval, or that would stop being a finite number, is an
        error (nothing is clipped silently), and so is an atom whose path has no declared bound
        or semiring (an unknown operator, parameter or feature).
        """
        atoms = list(atoms)
        problems: list[Problem] = []
        seen: set[tuple] = set()
        sets: dict[Path, tuple[int, Any]] = {}
        buckets: list[list[tuple[int, Atom, Path]]] = [[], [], [], []]  # one per priority, in atom order
        for i, a in enumerate(atoms):
            if a.__class__ is Idx:  # the common case of large packages, without the generic calls
                p = ("index", a.feature, a.seg)
                ident = (p, a.delta, a.value, a.target)
                prio = 3 if a.feature in SEMANTIC_FEATURES else 2
            else:
                p = atom_path(a)
                ident = (p, a.delta, a.value, None)
                prio = PRIORITY[a.__class__.__name__]
            if ident in seen:
                continue  # idempotent merge: the same atom twice is one change
            seen.add(ident)
            if a.value is not None:
                if p in sets and sets[p][1] != a.value:
                    problems.append(Problem(f"sets {'/'.join(p[1:])} to {a.value!r} but atom {sets[p][0]} sets it "
                                            f"to {sets[p][1]!r}; keep one", f"$.atoms[{i}]"))
                sets[p] = (i, a.value)
            buckets[prio].append((i, a, p))
        work: dict[Path, Any] = {}
        ops: list[list[Any]] = []
        raw = self._raw
        semirings: dict[str, str | None] = {}
        isfinite = math.isfinite
        for i, a, p in (item for bucket in buckets for item in bucket):
            cur = work[p] if p in work else raw.get(p)
            if a.__class__ is Idx and a.value is None:
                if a.feature not in semirings:
                    semirings[a.feature] = raw.get(("semiring", a.feature))
                sr = semirings[a.feature]
            else:
                sr = None
            if sr is not None:  # fast path for large packages: a delta on a registered feature
                op, x = ("add" if sr == "sum" else "max"), a.delta
                new = fold(op, cur, x)
                if not isfinite(new):
                    problems.append(Problem(f"index/{a.feature}/{a.seg} would become {new}", f"$.atoms[{i}]"))
                    continue
            else:
                try:
                    new, op, x = self._next_value(a, p, cur)
                except ValueError as exc:
                    problems.append(Problem(str(exc), f"$.atoms[{i}]"))
                    continue
            work[p] = new
            ops.append([p, op, x, cur])
            if a.__class__ is Idx and a.target is not None:
                tp = ("target", a.feature, a.seg)
                ops.append([tp, "set", a.target, work[tp] if tp in work else raw.get(tp)])
                work[tp] = a.target
        if problems:
            raise PackageError(problems, source="package")
        return [(p, raw.get(p), v) for p, v in work.items() if raw.get(p) != v], ops

    def _next_value(self, a: Atom, p: Path, cur: Any) -> tuple[Any, str, Any]:
        if a.__class__ is Idx:  # a delta on a registered feature took plan_ops' fast path
            if self._raw.get(("semiring", a.feature)) is None:
                known = sorted({k[1] for k in self._data if k[0] == "semiring"})
                raise ValueError(f"unknown index feature {a.feature!r} (registered: {', '.join(known) or 'none'})")
            return float(a.value), "set", float(a.value)
        bound = self._raw.get(("bound", *p[1:]))
        if bound is None:
            owners = sorted({k[3] for k in self._data if k[0] == "bound" and k[1:3] == p[1:3]})
            what = {"Op": "operator", "Len": "length policy", "Gate": "gate"}[p[1]]
            name = p[2] or "(default)"
            if owners:
                raise ValueError(f"{what} {name!r} has no parameter {p[3]!r} (declared: {', '.join(owners)})")
            raise ValueError(f"unknown {what} {name!r}: no plugin declares its parameters")
        if isinstance(a.value, bool) or isinstance(cur, bool):
            if a.value is None:
                raise ValueError(f"{'/'.join(p[1:])} is a switch: set it with 'value', not 'delta'")
            return a.value, "set", a.value
        new = float(a.value) if a.value is not None else (0.0 if cur is None else cur) + a.delta
        if not math.isfinite(new):
            raise ValueError(f"{'/'.join(p[1:])} would become {new}")
        if not bound[0] <= new <= bound[1]:
            raise ValueError(f"{'/'.join(p[1:])} would become {new:g}, outside its admissible interval "
                             f"[{bound[0]:g}, {bound[1]:g}]; nothing is clipped: ask for a value inside it")
        return (new, "set", new) if a.value is not None else (new, "add", a.delta)

    def apply(self, atoms: Iterable[Atom]) -> tuple[ControlState, Diff]:
        """Return (new state, diff) after applying atoms; see `plan_ops`."""
        diff = self.plan(atoms)
        return self.apply_diff(diff), diff

    # -- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Return the canonical nested JSON form: {kind: {...}} with sorted keys."""
        out: dict[str, Any] = {}
        for path, v in self._data.items():
            node = out.setdefault(path[0], {})
            for k in path[1:-1]:
                node = node.setdefault(k, {})
            node[path[-1]] = list(v) if isinstance(v, tuple) else v
        return out

    def canonical(self) -> str:
        """Return the canonical JSON text: sorted keys, no spaces, UTF-8 kept."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def __iter__(self) -> Iterator[Path]:
        return iter(self._data)

    def __repr__(self) -> str:
        return f"ControlState({len(self._data)} entries, seq={self.seq})"
