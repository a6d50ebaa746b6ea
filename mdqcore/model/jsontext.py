"""Reading untrusted JSON: every limit and ambiguity is a `what @ $.path` problem, never a traceback.

json.loads alone lets the last of two duplicate keys win (so a signed file with an extra
leading key still verifies), accepts NaN and Infinity, keeps lone surrogates that cannot be
encoded again, and raises RecursionError or ValueError deep inside for absurd nesting or
integers of thousands of digits. Here the text is parsed into a neutral form first and then
walked once, with its path, against the limits (the operator policy can change them).
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen

from ..errors import PackageError, Problem


@frozen
class Limits:
    """What an untrusted document may hold (defaults; the operator policy overrides them)."""

    max_bytes: int = 4 << 20  # 4 MiB: a 10,000-atom package is under 1 MiB
    max_depth: int = 32
    max_int_digits: int = 64
    max_string: int = 65536


class _Pairs(list):
    """An object as its raw (key, value) pairs, so that duplicates can be seen."""


class _Bad:
    def __init__(self, what: str) -> None:
        self.what = what


def _walk(x: Any, path: str, depth: int, lim: Limits, out: list[Problem]) -> Any:
    if depth > lim.max_depth:
        out.append(Problem(f"nested deeper than {lim.max_depth} levels", path))
        return None
    if isinstance(x, _Bad):
        out.append(Problem(x.what, path))
        return None
    if isinstance(x, str):
        _check_str(x, path, lim, out)
        return x
    if isinstance(x, _Pairs):
        obj: dict[str, Any] = {}
        for k, v in x:
            sub = f"{path}.{k}" if k.isidentifier() else f"{path}[{json.dumps(k, ensure_ascii=False)}]"
            _check_str(k, sub, lim, out)
            if k in obj:
                out.append(Problem(f"duplicate key {k!r}: refused, since readers would disagree on its value", sub))
            obj[k] = _walk(v, sub, depth + 1, lim, out)
        return obj
    if isinstance(x, list):
        return [_walk(v, f"{path}[{i}]", depth + 1, lim, out) for i, v in enumerate(x)]
    return x


def _check_str(s: str, path: str, lim: Limits, out: list[Problem]) -> None:
    if len(s) > lim.max_string:
        out.append(Problem(f"a string of {len(s):,} characters is over the limit of {lim.max_string:,}", path))
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        out.append(Problem(f"a lone surrogate (\\u{ord(s[exc.start]):04x}) is not text", path))


def parse_json(text: str | bytes, *, source: str = "document", limits: Limits | None = None) -> Any:
    """Parse untrusted JSON text within `limits`; raise PackageError listing every problem with its path."""
    lim = limits or Limits()
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > lim.max_bytes:
        raise PackageError([Problem(f"{size:,} bytes is over the limit of {lim.max_bytes:,} bytes")], source=source)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PackageError([Problem(f"not UTF-8 text (byte {exc.start})")], source=source) from None

    def big_int(digits: str) -> Any:
        n = len(digits.lstrip("-"))
        return int(digits) if n <= lim.max_int_digits else _Bad(f"an integer of {n:,} digits is over the limit "
                                                                 f"of {lim.max_int_digits}")

    try:
        raw = json.loads(text, object_pairs_hook=_Pairs, parse_int=big_int,
                         parse_constant=lambda c: _Bad(f"{c} is not a JSON number"))
    except json.JSONDecodeError as exc:
        raise PackageError([Problem(f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")],
                           source=source) from None
    except RecursionError:
        raise PackageError([Problem(f"nested far deeper than {lim.max_depth} levels")], source=source) from None
    problems: list[Problem] = []
    data = _walk(raw, "$", 0, lim, problems)
    if problems:
        raise PackageError(problems, source=source)
    return data
