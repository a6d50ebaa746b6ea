"""The domain catalog: terms with optional frequency, aliases and domain tags, read from JSONL or TSV.

A catalog is read-only at runtime. It changes only through Idx atoms of promoted packages
(feature ``term``: a segment with a positive value is a term), see `Catalog.with_state`.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from attrs import frozen

from mdqcore.errors import DocumentError, Problem

DEFAULT_U = (2, 3, 4, 5, 6, 8)
TERM_FEATURE = "term"


def is_punct(ch: str) -> bool:
    """Return True for punctuation, symbols and whitespace (never a lexical hit)."""
    return ch.isspace() or unicodedata.category(ch)[0] in "PSZ"


def check_lengths(U: Iterable[int], what: str = "U") -> tuple[int, ...]:
    """Return U sorted, refusing an empty set or a length < 2 (single characters never hit)."""
    try:
        out = tuple(sorted({int(u) for u in U}))
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a set of integer lengths, got {U!r}") from None
    if not out:
        raise ValueError(f"{what} is empty: give the allowed term lengths, e.g. {{2,3,4,5,6,8}}")
    if out[0] < 2:
        raise ValueError(f"{what} contains {out[0]}: lengths must be >= 2 (single characters never hit)")
    return out


@frozen
class Entry:
    """One catalog term."""

    term: str
    freq: int | None = None
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


class Catalog:
    """An immutable term catalog; surface forms (terms and aliases) map to their canonical term."""

    def __init__(self, entries: Iterable[Entry], *, U: Iterable[int] = DEFAULT_U, source: str = "catalog") -> None:
        self.U = check_lengths(U)
        self.entries: dict[str, Entry] = {}
        self.surface: dict[str, str] = {}
        problems: list[Problem] = []
        for i, e in enumerate(entries):
            for j, form in enumerate((e.term, *e.aliases)):
                where = f"$[{i}]" + (f".aliases[{j - 1}]" if j else ".term")
                why = self._bad_form(form)
                if why:
                    problems.append(Problem(why, where))
                elif form in self.surface and self.surface[form] != e.term:
                    problems.append(Problem(f"{form!r} already names {self.surface[form]!r}", where))
                else:
                    self.surface[form] = e.term
            self.entries[e.term] = e
        if problems:
            raise DocumentError(problems, source=source)
        if not self.entries:
            raise DocumentError([Problem("the catalog has no terms; give at least one term per line", "$")],
                                source=source)

    def _bad_form(self, form: str) -> str:
        if not isinstance(form, str) or len(form) < 2:
            return f"term {form!r} has fewer than 2 characters (single characters never hit); drop it"
        if len(form) > self.U[-1]:
            return f"term {form!r} has {len(form)} characters, more than max(U) = {self.U[-1]}; shorten it or widen U"
        bad = [ch for ch in form if is_punct(ch)]
        if bad:
            return f"term {form!r} contains punctuation or space {bad[0]!r}; punctuation never hits"
        return ""

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, form: object) -> bool:
        return form in self.surface

    def canonical(self, form: str) -> str | None:
        """Return the canonical term a surface form names, or None."""
        return self.surface.get(form)

    def tagged(self, tag: str) -> list[str]:
        """Return the terms with a domain tag."""
        return [t for t, e in self.entries.items() if tag in e.tags]

    def with_terms(self, extra: Mapping[str, float]) -> Catalog:
        """Return a catalog with `extra` segments added (value > 0) as terms tagged `package`."""
        new = [Entry(s, tags=("package",)) for s, v in sorted(extra.items()) if v > 0 and s not in self.surface]
        if not new:
            return self
        return Catalog([*self.entries.values(), *new], U=self.U, source="catalog + promoted term atoms")

    @classmethod
    def load(cls, path: str | Path, *, U: Iterable[int] = DEFAULT_U) -> Catalog:
        """Read a catalog from a .jsonl file (term, freq, aliases, tags) or a .tsv file (same columns)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"catalog file {p} does not exist")
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DocumentError([Problem(f"not UTF-8 (byte {raw[exc.start]:#04x}); re-save the file as UTF-8",
                                         f"line {line}")], source=str(p)) from None
        rows = _jsonl(text, str(p)) if p.suffix == ".jsonl" else _tsv(text)
        return cls(rows, U=U, source=str(p))

    @classmethod
    def starter(cls, *, U: Iterable[int] = DEFAULT_U) -> Catalog:
        """Return the shipped medical starter catalog (see data/README.md for its source and licence)."""
        return cls.load(Path(str(files("mdq_flexattn") / "data" / "medical_catalog.tsv")), U=U)


def _tsv(text: str) -> list[Entry]:
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t") + ["", "", ""]
        freq = int(cols[1]) if cols[1].strip().isdigit() else None
        out.append(Entry(cols[0].strip(), freq, _split(cols[2], "|"), _split(cols[3], ",")))
    return out


def _jsonl(text: str, source: str) -> list[Entry]:
    out, problems = [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
            term = obj["term"]
            freq = obj.get("freq", obj.get("frequency"))
            if freq is not None and (isinstance(freq, bool) or not isinstance(freq, int) or freq < 0):
                raise ValueError(f"freq must be a non-negative integer, got {freq!r}")
            out.append(Entry(term, freq, tuple(obj.get("aliases", ())), tuple(obj.get("tags", ()))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(Problem(f"bad catalog line ({type(exc).__name__}: {exc}); expected "
                                    '{"term": ..., "freq": ..., "aliases": [...], "tags": [...]}', f"line {n}"))
    if problems:
        raise DocumentError(problems, source=source)
    return out


def _split(cell: str, sep: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in cell.split(sep) if x.strip())
