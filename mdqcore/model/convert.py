"""The one cattrs converter: JSON <-> models, with every problem reported as `what @ $.path`."""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import Any, Literal, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.cols import list_structure_factory
from cattrs.gen import make_mapping_structure_fn
from cattrs.v import format_exception as _default_format

from ..errors import DocumentError, Invalid, PackageError, Problem
from . import types as t
from .atoms import ATOM_TYPES, Atom
from .jsontext import Limits, parse_json
from .package import AUTO, MdqPackage

_conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)

for _typ, _check in ((str, t.check_str), (float, t.check_float), (int, t.check_int), (bool, t.check_bool),
                     (t.Name, t.check_name), (t.SemVerStr, t.check_semver), (t.RangeStr, t.check_range),
                     (t.Timestamp, t.check_timestamp)):
    _conv.register_structure_hook(_typ, lambda v, _, c=_check: c(v))


def _number_or_switch(v: Any, _: Any) -> float | bool | None:
    if v is None or isinstance(v, bool):
        return v
    return t.check_float(v)


def _strict(container: type, what: str, factory: Any) -> Any:
    """Wrap a cattrs hook factory: its hooks refuse any JSON value but `container` (cattrs would iterate a string)."""
    def make(tp: Any, conv: cattrs.Converter) -> Any:
        inner = factory(tp, conv)

        def hook(v: Any, typ: Any) -> Any:
            if not isinstance(v, container):
                raise Invalid(f"expected {what}, got {t.json_type(v)}")
            return inner(v, typ)
        return hook
    return make


_conv.register_structure_hook_factory(lambda tp: getattr(tp, "__origin__", None) is list,
                                      _strict(list, "an array", list_structure_factory))
_conv.register_structure_hook_factory(lambda tp: getattr(tp, "__origin__", None) is dict,
                                      _strict(dict, "an object", make_mapping_structure_fn))
_conv.register_structure_hook(Union[float, bool, None], _number_or_switch)


def _structure_atom(v: Any, _: Any) -> Atom:
    if not isinstance(v, dict):
        raise Invalid(f"an atom must be an object with a 'type', got {t.json_type(v)}")
    kind = v.get("type")
    if kind not in ATOM_TYPES:
        exc = Invalid("required field missing" if kind is None else
                        f"unknown atom type {kind!r}; expected one of {', '.join(ATOM_TYPES)}")
        exc.__notes__ = [cattrs.errors.AttributeValidationNote("atom type", "type", str)]
        raise ClassValidationError("invalid atom", [exc], dict)
    body = {k: x for k, x in v.items() if k != "type"}
    return _conv.structure(body, ATOM_TYPES[kind])


_ATOM_FIELDS = {cls: tuple(f.name for f in attrs.fields(cls)) for cls in ATOM_TYPES.values()}
_ATOM_GET = {cls: operator.attrgetter(*names) for cls, names in _ATOM_FIELDS.items()}


def atom_to_json(a: Atom) -> dict[str, Any]:
    """Return an atom's JSON form ({"type": ..., fields without None})."""
    # hot path for 10,000-atom packages: atom fields are plain scalars, so no generic machinery
    cls = a.__class__
    d: dict[str, Any] = {"type": cls.__name__}
    for n, v in zip(_ATOM_FIELDS[cls], _ATOM_GET[cls](a)):
        if v is not None:
            d[n] = v
    return d


def atom_from_json(data: dict[str, Any]) -> Atom:
    """Build an atom from its JSON form; raises cattrs validation errors (see `problems_of`)."""
    return _structure_atom(dict(data), Atom)


def _structure_inverse_item(v: Any, _: Any) -> Any:
    if isinstance(v, str):
        if v != AUTO:
            raise Invalid(f"expected an atom object or {AUTO!r} (derive automatically), got {v!r}")
        return v
    return _structure_atom(v, Atom)


_conv.register_structure_hook(Atom, _structure_atom)
_conv.register_unstructure_hook(Atom, atom_to_json)
for _cls in ATOM_TYPES.values():
    _conv.register_unstructure_hook(_cls, atom_to_json)
_conv.register_structure_hook(Union[Atom, Literal["..."]], _structure_inverse_item)
_conv.register_unstructure_hook(Union[Atom, Literal["..."]], lambda v: v if isinstance(v, str) else atom_to_json(v))


def _format(exc: BaseException, typ: type | None) -> str:
    if isinstance(exc, Invalid):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown key{'s' if len(exc.extra_fields) > 1 else ''} {', '.join(sorted(map(repr, exc.extra_fields)))}"
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, (TypeError, AttributeError)) and typ is not None and getattr(typ, "__origin__", None) is dict:
        return "expected an object"
    if isinstance(exc, TypeError) and "not iterable" in str(exc):
        return "expected an array"
    return _default_format(exc, typ)


def problems_of(exc: BaseException) -> list[Problem]:
    """Turn a cattrs structuring failure into Problems with JSON paths."""
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        lines = cattrs.transform_error(exc, path="$", format_exception=_format)
    else:
        lines = [f"{_format(exc, None)} @ $"]
    return [Problem(msg, path) for msg, _, path in (line.rpartition(" @ ") for line in lines)]


def structure(data: Any, cls: type, *, source: str = "document", error: type[DocumentError] = PackageError) -> Any:
    """Build a model from parsed JSON, raising `error` (a PackageError unless told) listing every problem."""
    if not isinstance(data, dict):
        raise error([Problem(f"expected an object, got {t.json_type(data)}")], source=source)
    try:
        return _conv.structure(data, cls)
    except (ClassValidationError, IterableValidationError, Invalid) as exc:
        raise error(problems_of(exc), source=source) from None


def unstructure(obj: Any) -> Any:
    """Return the JSON-ready form of a model (None-valued optional fields are dropped)."""
    return _drop_none(_conv.unstructure(obj))


def _drop_none(x: Any) -> Any:
    if isinstance(x, dict):
        if "type" in x and x.get("type") in ATOM_TYPES:
            return x  # atoms are already free of None
        return {k: _drop_none(v) for k, v in x.items() if v is not None}
    if isinstance(x, list):
        if x and isinstance(x[0], dict) and x[0].get("type") in ATOM_TYPES:
            return x  # a list of atoms (a package's atoms or inverse): already free of None
        return [_drop_none(v) for v in x]
    return x


def canonical_json(obj: Any) -> str:
    """Return the canonical JSON of a model: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(unstructure(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_package(source: str | Path | dict[str, Any], *, limits: Limits | None = None) -> MdqPackage:
    """Load an MdqPackage from a file path, JSON text or an already parsed dict (untrusted text within `limits`)."""
    if isinstance(source, dict):
        return structure(source, MdqPackage, source="package")
    if isinstance(source, Path) or (isinstance(source, str) and not source.lstrip().startswith("{")):
        return load_file(source, MdqPackage, limits=limits)
    return structure(parse_json(source, source="package", limits=limits), MdqPackage, source="package")


def load_file(path: str | Path, cls: type, *, limits: Limits | None = None,
              error: type[DocumentError] = PackageError) -> Any:
    """Read one JSON file (untrusted, within `limits`) into a model; every problem names the file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise error([Problem(f"cannot read file: {exc.strerror}")], source=str(path)) from None
    return structure(parse_json(raw, source=str(path), limits=limits), cls, source=str(path), error=error)
