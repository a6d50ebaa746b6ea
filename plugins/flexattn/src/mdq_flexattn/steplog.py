"""The structured step log (JSONL) and its replay.

Line 1 is a header: {"type": "header", "question", "reference", "gate", "cohort", "ledger_head"}.
Every further line is one step with the design's fields (step, Lh, Lp, a, seg, len, idf, sim,
delta, ler, len_cost) plus chi, P, dup and R. The text scored is the concatenation of the
steps' `a`, so a log is enough to recompute every reward given the control state, which the
ledger rebuilds as of `ledger_head`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


from mdqcore.errors import DocumentError, Problem

from .gates import GATES
from .reward import Scorer, Step

FIELDS = list(Step._fields)


def write_log(path: str | Path, header: Mapping[str, Any], steps: Iterable[Step]) -> int:
    """Write a header and the steps as JSONL; return the number of steps."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "header", **header}, ensure_ascii=False) + "\n")
        for s in steps:
            fh.write(json.dumps(s.as_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_log(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a step log, reporting every malformed line with its number."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"step log {p} does not exist")
    header: dict[str, Any] | None = None
    rows, problems = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            problems.append(Problem(f"not JSON ({exc.args[0]})", f"line {n}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem("a record must be a JSON object", f"line {n}"))
        elif obj.get("type") == "header":
            header = obj
        else:
            missing = [f for f in FIELDS if f not in obj]
            if missing:
                problems.append(Problem(f"step record lacks {', '.join(missing)}", f"line {n}"))
            else:
                rows.append(obj)
    if header is None:
        problems.append(Problem("no header line ({\"type\": \"header\", \"question\": ...}); "
                                "write logs with `mdq demo` or mdq_flexattn.steplog.write_log", "line 1"))
    if problems:
        raise DocumentError(problems, source=str(p))
    return header, rows


def replay_log(header: Mapping[str, Any], rows: list[dict[str, Any]], state: Any,
               tol: float = 1e-9) -> list[str]:
    """Recompute every step under `state`; return one line per field that differs from the log."""
    text = "".join(r["a"] for r in rows)
    if not text:
        return []
    scorer = Scorer(state, gate=header.get("gate", GATES[0]))
    diffs = []
    for logged, new in zip(rows, scorer.steps(header.get("question", ""), text, header.get("reference"))):
        for f, v in new.as_dict().items():
            old = logged[f]
            same = math.isclose(old, v, rel_tol=0, abs_tol=tol) if isinstance(v, float) and not isinstance(
                old, (str, bool)) and old is not None else old == v
            if not same:
                diffs.append(f"step {logged['step']} ({logged['a']}): {f} logged {old!r}, recomputed {v!r}")
    return diffs
