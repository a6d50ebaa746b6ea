"""A JSON Schema (draft 2020-12) of the package format, generated from the attrs models."""

from __future__ import annotations

import typing
from types import NoneType, UnionType
from typing import Any, Literal, Union

import attrs

from . import types as t
from .atoms import ATOM_TYPES, Atom
from .package import MdqPackage

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    float: {"type": "number"},
    int: {"type": "integer"},
    bool: {"type": "boolean"},
    t.Name: {"type": "string", "pattern": f"^{t.NAME_RE.pattern}$"},
    t.SemVerStr: {"type": "string", "description": "SemVer 2.0 version, e.g. 1.4.2",
                  "pattern": r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"},
    t.RangeStr: {"type": "string", "description": "SemVer range, e.g. ^1.2.0 or >=1.0.0 <2.0.0"},
    t.Timestamp: {"type": "string", "format": "date-time"},
}


def _schema_of(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is Atom:
        return {"oneOf": [_schema_of(cls, defs) for cls in ATOM_TYPES.values()]}
    if attrs.has(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder breaks recursion
            defs[name] = _class_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return {"type": "array", "items": _schema_of(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema_of(args[1], defs),
                "propertyNames": _schema_of(args[0], defs)}
    if origin is Literal:
        return {"const": args[0]} if len(args) == 1 else {"enum": list(args)}
    if origin in (Union, UnionType):
        if set(args) >= set(typing.get_args(Atom)):  # Atom | "...": unions flatten, so find the atoms again
            rest = [a for a in args if a not in typing.get_args(Atom)]
            return {"anyOf": [_schema_of(Atom, defs)] + [_schema_of(a, defs) for a in rest]}
        return {"anyOf": [_schema_of(a, defs) if a is not NoneType else {"type": "null"} for a in args]}
    raise TypeError(f"no JSON Schema mapping for {tp!r}")


def _class_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required = []
    if cls in ATOM_TYPES.values():
        props["type"] = {"const": cls.__name__}
        required.append("type")
    for f in attrs.fields(cls):
        sch = _schema_of(hints[f.name], defs)
        if f.metadata.get("doc"):
            sch = {**sch, "description": f.metadata["doc"]}
        sch.update(f.metadata.get("schema", {}))  # constraints the type alone cannot say
        props[f.name] = sch
        if f.default is attrs.NOTHING:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "description": (cls.__doc__ or "").strip().splitlines()[0],
                           "properties": props, "required": required, "additionalProperties": False}
    if cls in ATOM_TYPES.values():
        # exactly one of delta / value
        out["oneOf"] = [{"required": ["delta"], "not": {"required": ["value"]}},
                        {"required": ["value"], "not": {"required": ["delta"]}}]
    return out


def package_schema() -> dict[str, Any]:
    """Return the JSON Schema of an MDQ package."""
    defs: dict[str, Any] = {}
    root = _class_schema(MdqPackage, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://mdq.dev/schema/package.json", "title": "MDQ package",
            **root, "$defs": dict(sorted(defs.items()))}
