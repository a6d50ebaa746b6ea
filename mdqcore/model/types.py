"""Constrained scalar types for the models; the converter checks each at its JSON path."""

from __future__ import annotations

import math
import re
from typing import Any, NewType

import semver

from ..errors import Invalid
from ..versions.ranges import Range

Name = NewType("Name", str)          # a dotted package / capability name
SemVerStr = NewType("SemVerStr", str)  # MAJOR.MINOR.PATCH[-pre][+build]
RangeStr = NewType("RangeStr", str)    # a SemVer range, checked by mdqcore.versions when present
Timestamp = NewType("Timestamp", str)  # ISO 8601 with a time zone

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,127}")  # matched whole (fullmatch): no trailing newline slips by


def _expect(value: Any, ok: bool, what: str) -> Any:
    """Return `value` if `ok`, else refuse it naming the JSON type expected and the one given."""
    if not ok:
        raise Invalid(f"expected {what}, got {json_type(value)}")
    return value


def check_str(value: Any) -> str:
    """Accept a JSON string only (no silent str(3))."""
    return _expect(value, isinstance(value, str), "a string")


def check_float(value: Any) -> float:
    """Accept a finite JSON number (not a boolean)."""
    _expect(value, isinstance(value, (int, float)) and not isinstance(value, bool), "a number")
    if not math.isfinite(value):
        raise Invalid(f"expected a finite number, got {value}")
    return float(value)


def check_int(value: Any) -> int:
    """Accept a JSON integer (not a boolean, not 2.0)."""
    return _expect(value, isinstance(value, int) and not isinstance(value, bool), "an integer")


def check_bool(value: Any) -> bool:
    """Accept a JSON boolean only."""
    return _expect(value, isinstance(value, bool), "true or false")


def check_name(value: Any) -> str:
    """Accept a lower-case dotted name such as mdq.idx.ifu.idf-boost."""
    value = check_str(value)
    if not NAME_RE.fullmatch(value):
        shown = repr(value) if len(value) <= 140 else f"a name of {len(value):,} characters"
        raise Invalid(f"{shown} is not a valid name: use 1 to 128 lower-case letters, digits, '.', '_' or '-', "
                      f"starting with a letter or digit")
    return value


def check_semver(value: Any) -> str:
    """Accept a SemVer 2.0 version string."""
    value = check_str(value)
    if not semver.Version.is_valid(value):
        raise Invalid(f"{value!r} is not a SemVer version: expected MAJOR.MINOR.PATCH, e.g. 1.4.2")
    return value


def check_range(value: Any) -> str:
    """Accept a SemVer range; the full grammar lives in mdqcore.versions.ranges."""
    value = check_str(value)
    try:
        Range.parse(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return value


def check_timestamp(value: Any) -> str:
    """Accept an ISO 8601 timestamp with a time zone, e.g. 2026-11-22T10:00:00+00:00."""
    from datetime import datetime

    value = check_str(value)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{value!r} is not an ISO 8601 timestamp, e.g. 2026-11-22T10:00:00Z") from None
    if ts.tzinfo is None:
        raise Invalid(f"{value!r} has no time zone; add Z or +00:00")
    return value


def json_type(value: Any) -> str:
    """Name the JSON type of a parsed value, as error messages say it."""
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)
