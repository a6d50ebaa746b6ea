"""Versioned data models (attrs) and their one JSON converter (cattrs)."""

from .atoms import ATOM_TYPES, Atom, Gate, Idx, Len, Op, negate
from .convert import canonical_json, load_package, structure, unstructure
from .jsontext import Limits, parse_json
from .package import Kpi, MdqPackage, Provenance, Rollback
from .results import GateResult
from .schema import package_schema
from .state import ControlState

__all__ = [
    "ATOM_TYPES", "Atom", "ControlState", "Gate", "GateResult", "Idx", "Kpi", "Len", "Limits", "MdqPackage", "Op",
    "Provenance", "Rollback", "canonical_json", "load_package", "negate", "package_schema", "parse_json", "structure",
    "unstructure",
]
