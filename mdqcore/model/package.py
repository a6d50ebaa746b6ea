"""MdqPackage: a versioned, signed, reversible bundle of atoms (docs/concepts.md §2)."""

from __future__ import annotations

from typing import Literal, Union

from attrs import field, frozen

from ..errors import Invalid
from .atoms import Atom, negate
from .types import Name, RangeStr, SemVerStr, Timestamp

AUTO = "..."  # in rollback.inverse: "derive the inverse of every atom when applying"


@frozen
class Rollback:
    """How to undo a package: explicit inverse atoms, or "..." to derive them from the atoms."""

    inverse: list[Union[Atom, Literal["..."]]] = field(
        factory=list, metadata={"doc": "inverse atoms, in order; the string '...' means derive automatically"})

    @property
    def auto(self) -> bool:
        """Tell whether the inverse is to be derived from the package's own atoms."""
        return not self.inverse or any(i == AUTO for i in self.inverse)


@frozen
class Kpi:
    """The KPI gains a package expects (e.g. {"w_nc_drop": 0.3}) and how much loss it tolerates."""

    target: dict[str, float] = field(factory=dict, metadata={"doc": "KPI name -> expected gain"})
    tolerance: dict[str, float] = field(factory=dict, metadata={"doc": "KPI name -> largest acceptable regression"})


@frozen
class Provenance:
    """Who made a package, when, and why."""

    author: str = field(metadata={"doc": "person or system that proposed the package"})
    reason: str = field(metadata={"doc": "why the change is made"})
    created_at: Timestamp = field(metadata={"doc": "ISO 8601 time with zone"})


@frozen
class MdqPackage:
    """An MDQ package: atoms plus everything needed to check, apply, trace and undo them."""

    name: Name = field(metadata={"doc": "dotted lower-case name, e.g. mdq.idx.ifu.idf-boost"})
    semver: SemVerStr = field(metadata={"doc": "SemVer 2.0 version of this package"})
    atoms: list[Atom] = field(metadata={"doc": "the changes, applied in order", "schema": {"minItems": 1}})
    scope: list[str] = field(factory=list, metadata={"doc": "domains or pipelines it applies to, e.g. MED, RAG"})
    requires: dict[Name, RangeStr] = field(factory=dict, metadata={"doc": "plugin or package name -> SemVer range"})
    tests: list[str] = field(factory=list, metadata={"doc": "gates it must pass before staging"})
    rollback: Rollback = field(factory=Rollback, metadata={"doc": "how to undo it"})
    kpi: Kpi = field(factory=Kpi, metadata={"doc": "expected KPI gains"})
    provenance: Provenance | None = field(default=None, metadata={"doc": "author, reason, created_at"})
    expires: Timestamp | None = field(default=None, metadata={"doc": "ISO 8601 time after which it is refused (signed)"})
    signature: str | None = field(default=None, metadata={"doc": "reserved: base64 ed25519 over the canonical JSON"})

    def __attrs_post_init__(self) -> None:
        if not self.atoms:
            raise Invalid("a package needs at least one atom in 'atoms'")

    @property
    def ref(self) -> str:
        """Return NAME@VERSION."""
        return f"{self.name}@{self.semver}"

    def inverse_atoms(self) -> list[Atom]:
        """Return the atoms that undo this package: explicit ones, or the negated atoms in reverse."""
        if not self.rollback.auto:
            return [a for a in self.rollback.inverse if not isinstance(a, str)]
        return [negate(a) for a in reversed(self.atoms)]
