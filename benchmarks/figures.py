"""Check that every figure a README quotes in its results tables is in a results file.

    python benchmarks/figures.py            # lists every figure it cannot find; exit 1 if any

A results table is a Markdown table under a heading that says "Measured" or "Results", or one
preceded by a marker naming the files its figures come from:

    <!-- figures: benchmarks/results/moe_interference.json -->
    | model | task 0 | ... |

Every table under such a heading needs the marker. In a marked table every number outside the
header row and the first column (the row labels) must equal a number of the named files, as
shown: 8.86 matches 8.8612, 97.8% matches 0.978, 1.30 matches 1.3004; ranges and units around
it do not matter. A marked table with no figure at all, a marker naming a missing file, or a
results file with no numbers is an error too: a check that passes on nothing proves nothing.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*figures:\s*(.+?)\s*-->")
HEADING = re.compile(r"^#+\s.*\b(measured|results)\b", re.IGNORECASE)
NUMBER = re.compile(r"(?<![\w.])([+-]?\d+(?:\.\d+)?)(%?)(?![\w.])")
CODE = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class Problem:
    """One figure (or table) that is not backed by a results file."""

    readme: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.readme}:{self.line}: {self.what}"


def readmes() -> list[Path]:
    """Return the READMEs that may quote results: the repository's, the benchmarks', every plugin's."""
    return [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]


def numbers(doc: Any) -> Iterator[float]:
    """Yield every number in a JSON document (booleans are not figures)."""
    if isinstance(doc, bool):
        return
    if isinstance(doc, int | float):
        yield float(doc)
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from numbers(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from numbers(v)


class Figures:
    """The numbers of some results files, looked up as a README would print them."""

    def __init__(self, paths: list[Path]) -> None:
        self.values: list[float] = []
        for p in paths:
            vals = list(numbers(json.loads(p.read_text())))
            if not vals:
                raise ValueError(f"{p} holds no numbers")
            self.values += vals
        self._shown: dict[tuple[int, bool], set[str]] = {}

    def has(self, token: str, percent: bool) -> bool:
        """Say whether some value, rounded to the token's decimals (x100 for a percentage), prints as the token."""
        d = len(token.split(".")[1]) if "." in token else 0
        key = (d, percent)
        if key not in self._shown:
            self._shown[key] = {_norm(f"{v * (100 if percent else 1):.{d}f}") for v in self.values}
        return _norm(token.lstrip("+")) in self._shown[key]


def _norm(s: str) -> str:
    return s[1:] if s.startswith("-") and not s.strip("-0.") else s  # "-0.00" prints the same figure as "0.00"


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def check(readme: Path) -> list[Problem]:
    """Return every results table and figure of one README that no results file backs."""
    rel = str(readme.relative_to(ROOT))
    lines = readme.read_text().splitlines()
    problems: list[Problem] = []
    in_results, marker, i = False, None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            in_results, marker = bool(HEADING.match(line)), None
        m = MARKER.search(line)
        if m:
            marker = (i + 1, [p.strip() for p in m.group(1).split(",")])
        if not line.lstrip().startswith("|"):
            i += 1
            continue
        start = i
        table = []
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            table.append(lines[i])
            i += 1
        if marker is None:
            if in_results:
                problems.append(Problem(rel, start + 1, "a results table without a `<!-- figures: FILE.json -->` marker"))
            continue
        problems += _check_table(rel, start, table, marker)
        marker = None
    return problems


def _check_table(rel: str, start: int, table: list[str], marker: tuple[int, list[str]]) -> list[Problem]:
    line_no, names = marker
    paths = [ROOT / n for n in names]
    missing = [n for n, p in zip(names, paths, strict=True) if not p.is_file()]
    if missing:
        return [Problem(rel, line_no, f"the marker names missing file(s) {missing}")]
    try:
        figs = Figures(paths)
    except ValueError as exc:
        return [Problem(rel, line_no, str(exc))]
    problems, seen = [], 0
    for k, row in enumerate(table[2:], start=start + 3):  # the header and its |---| line hold no figures
        for cell in _cells(row)[1:]:
            for tok, pct in NUMBER.findall(CODE.sub("", cell)):
                seen += 1
                if not figs.has(tok, bool(pct)):
                    problems.append(Problem(rel, k, f"{tok}{pct} is in no number of {', '.join(names)}"))
    if not seen:
        problems.append(Problem(rel, start + 1, "a marked results table quotes no figure"))
    return problems


def main() -> None:
    """Check every README; print what is not backed; exit 1 if anything is not."""
    problems = [p for r in readmes() for p in check(r)]
    for p in problems:
        print(p)
    print(f"{len(problems)} problem(s) in {len(readmes())} READMEs")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
