"""SemVer ranges with npm's grammar and prerelease rule, over the `semver` library.

Grammar (npm node-semver): a range is comparator sets joined by `||`; a set is comparators
separated by spaces or commas; each comparator is `[op]partial` with op in < <= > >= = ^ ~,
or a hyphen range `a - b`. Partials may use x / X / * wildcards or omit parts (`1`, `1.2`).
Every form desugars to plain comparators, e.g. `^0.2.3` -> `>=0.2.3 <0.3.0-0`.

Prereleases (npm): a version with a prerelease tag satisfies a set only if some comparator
in that set names the same MAJOR.MINOR.PATCH with a prerelease tag, so `^1.2.3` does not
admit `1.3.0-beta` but `>=1.3.0-beta.1 <2` does admit `1.3.0-beta.2`.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterable

import semver
from attrs import frozen

from ..errors import RangeError

Key = tuple  # (major, minor, patch, is_release, prerelease identifiers)

_XR = r"(?:0|[1-9]\d*|[xX*])"
_PRE = r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
_PARTIAL = re.compile(rf"^v?(?P<maj>{_XR})(?:\.(?P<min>{_XR})(?:\.(?P<pat>{_XR}){_PRE})?)?$")
_COMPARATOR = re.compile(r"^(?P<op><=|>=|<|>|=|\^|~)?\s*(?P<ver>\S*)$")

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "=": operator.eq}


@functools.lru_cache(maxsize=65536)
def version_key(version: str) -> Key:
    """Return a sort key that orders versions by SemVer precedence (build metadata ignored)."""
    v = semver.Version.parse(version)
    if not v.prerelease:
        return (v.major, v.minor, v.patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.prerelease.split("."))
    return (v.major, v.minor, v.patch, 0, ids)


@frozen
class Comparator:
    """One plain comparison `op version`, op in < <= > >= =."""

    op: str
    version: str
    key: Key

    def __str__(self) -> str:
        return f"{'' if self.op == '=' else self.op}{self.version}"

    def test(self, key: Key) -> bool:
        """Compare a version key against this comparator."""
        return _OPS[self.op](key, self.key)


def _cmp(op: str, maj: int, mi: int, pa: int, pre: str | None = None) -> Comparator:
    v = f"{maj}.{mi}.{pa}" + (f"-{pre}" if pre else "")
    return Comparator(op, v, version_key(v))


def _partial(text: str, whole: str) -> tuple[int | None, int | None, int | None, str | None]:
    m = _PARTIAL.match(text)
    if not m:
        raise RangeError(f"{whole!r} is not a valid SemVer range: {text!r} is not a version "
                         f"(expected e.g. 1.2.3, 1.2, 1.x, ^1.2.3, ~1.2, >=1.0.0 <2.0.0, 1.2.3 - 2.0.0)")
    maj, mi, pa = (None if s is None or s in "xX*" else int(s) for s in m.group("maj", "min", "pat"))
    if maj is None:
        mi = pa = None
    elif mi is None:
        pa = None
    if (m.group("pre") or m.group("build")) and pa is None:
        raise RangeError(f"{whole!r}: a prerelease or build tag needs a full MAJOR.MINOR.PATCH in {text!r}")
    return maj, mi, pa, m.group("pre")


def _desugar(op: str, text: str, whole: str) -> list[Comparator]:
    maj, mi, pa, pre = _partial(text, whole)
    if op in ("^", "~"):
        if maj is None:
            return [_cmp(">=", 0, 0, 0)]
        # ~ allows patch changes (minor ones if no minor is given); ^ any change left of the first non-zero part
        if mi is None or (op == "^" and maj > 0):
            nxt = (maj + 1, 0, 0)
        elif op == "~" or mi > 0 or pa is None:
            nxt = (maj, mi + 1, 0)
        else:
            nxt = (0, 0, pa + 1)
        return [_cmp(">=", maj, mi or 0, pa or 0, pre), _cmp("<", *nxt, "0")]
    if maj is None:  # *, x, or op with x: anything (>x / <x match nothing)
        return [_cmp("<", 0, 0, 0, "0")] if op in ("<", ">") else [_cmp(">=", 0, 0, 0)]
    if pa is not None:
        return [_cmp(op or "=", maj, mi, pa, pre)]
    # a partial version, 1 or 1.2, stands for the run [lo, nxt): each operator compares with one end of it
    lo = (maj, mi or 0, 0)
    nxt = (maj + 1, 0, 0) if mi is None else (maj, mi + 1, 0)
    ends = {">=": [_cmp(">=", *lo)], "<": [_cmp("<", *lo, "0")], ">": [_cmp(">=", *nxt)], "<=": [_cmp("<", *nxt, "0")]}
    return ends[">="] + ends["<="] if op in ("", "=") else ends[op]


def _parse_set(text: str, whole: str) -> tuple[Comparator, ...]:
    text = text.strip()
    hy = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hy:  # a - b is >=a <=b, where a partial b means "up to the end of it" and x means no upper bound
        lo = _desugar(">=", hy.group(1), whole)
        return tuple(lo if _partial(hy.group(2), whole)[0] is None else lo + _desugar("<=", hy.group(2), whole))
    if not text:
        return (_cmp(">=", 0, 0, 0),)
    # glue operators to their version: ">= 1.2.3" -> ">=1.2.3"
    tokens = re.sub(r"(<=|>=|<|>|=|\^|~)\s+", r"\1", text.replace(",", " ")).split()
    comps: list[Comparator] = []
    for tok in tokens:
        m = _COMPARATOR.match(tok)
        if not m or not m.group("ver") or m.group("ver")[0] in "<>=^~":
            raise RangeError(f"{whole!r} is not a valid SemVer range: cannot read {tok!r} "
                             f"(operators are < <= > >= = ^ ~, one per version)")
        comps.extend(_desugar(m.group("op") or "", m.group("ver"), whole))
    return tuple(comps)


@frozen
class Range:
    """A parsed SemVer range: a union of comparator sets."""

    text: str
    sets: tuple[tuple[Comparator, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Range:
        """Parse a range string, raising RangeError that says what is wrong and what is accepted."""
        return _parse_cached(text)

    def contains(self, version: str) -> bool:
        """Tell whether a version (string) satisfies this range."""
        return self.contains_key(version_key(version))

    def contains_key(self, key: Key) -> bool:
        """Tell whether a version, given as its sort key, satisfies this range."""
        for comps in self.sets:
            if all(c.test(key) for c in comps):
                if key[3] == 1:
                    return True
                # npm: a prerelease passes only if the set names its MAJOR.MINOR.PATCH with a tag
                if any(c.key[3] == 0 and c.key[:3] == key[:3] for c in comps):
                    return True
        return False

    def normalized(self) -> str:
        """Return the desugared form, e.g. '>=1.2.3 <2.0.0-0'."""
        return " || ".join(" ".join(map(str, s)) for s in self.sets)

    def __str__(self) -> str:
        return self.text


@functools.lru_cache(maxsize=16384)
def _parse_cached(text: str) -> Range:
    if not isinstance(text, str):
        raise RangeError(f"a range must be a string, got {type(text).__name__}")
    if len(text) > 1024:
        raise RangeError(f"range of {len(text)} characters is too long (at most 1024)")
    return Range(text, tuple(_parse_set(part, text) for part in text.split("||")))


def satisfies(version: str, range_text: str) -> bool:
    """Tell whether `version` satisfies `range_text`."""
    return Range.parse(range_text).contains(version)


def max_satisfying(versions: Iterable[str], range_text: str) -> str | None:
    """Return the highest version that satisfies the range, or None."""
    r = Range.parse(range_text)
    return max((v for v in versions if r.contains(v)), key=version_key, default=None)
