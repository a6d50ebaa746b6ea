"""The four MDQ atom kinds: the smallest changes to a pipeline's control plane.

Every atom either adds `delta` to one parameter or sets it to `value` (exactly one of the
two). An atom with `delta` is its own inverse up to sign; an atom with `value` is undone by
the value it replaced, which the runtime records when it applies the atom. Which parameter an
atom changes is its state path (`mdqcore.model.state.atom_path`).
"""

from __future__ import annotations

from typing import Any, Union

from attrs import evolve, field, frozen

from ..errors import Invalid
from .types import Name


class _Change:
    """What every atom checks: exactly one of `delta` (add) and `value` (set)."""

    __slots__ = ()
    delta: Any
    value: Any

    def __attrs_post_init__(self) -> None:
        if (self.delta is None) == (self.value is None):
            raise Invalid(f"{type(self).__name__} atom needs exactly one of 'delta' (add) or 'value' (set)")


@frozen
class Op(_Change):
    """Change one parameter of one operator (L, R, Pi, T, Cl, ...): a gate, weight or switch."""

    op: str = field(metadata={"doc": "operator name, e.g. 'L' (lexical)"})
    param: str = field(metadata={"doc": "parameter of the operator, e.g. 'lambda_lex' or 'tau'"})
    delta: float | None = field(default=None, metadata={"doc": "amount to add"})
    value: float | bool | None = field(default=None, metadata={"doc": "value to set (number or switch)"})


@frozen
class Len(_Change):
    """Change a length-policy parameter: L_h / L_p windows, their sets, or their costs."""

    param: str = field(metadata={"doc": "e.g. 'Lh_max', 'Lp_max', 'lambda_h', 'lambda_p', 'alpha_h', 'alpha_p'"})
    delta: float | None = field(default=None, metadata={"doc": "amount to add"})
    value: float | None = field(default=None, metadata={"doc": "value to set"})
    policy: str | None = field(default=None, metadata={"doc": "length policy name; the default policy if absent"})


@frozen
class Idx(_Change):
    """Change one entry of the index functional: the weight of feature `feature` on `seg`."""

    feature: str = field(metadata={"doc": "index feature family, e.g. 'idf', 'alias', 'synonym', 'regex'"})
    seg: str = field(metadata={"doc": "the segment (term) whose entry changes", "schema": {"minLength": 1}})
    delta: float | None = field(default=None, metadata={"doc": "amount to add (sum semiring) or candidate (max)"})
    value: float | None = field(default=None, metadata={"doc": "weight to set"})
    target: str | None = field(default=None, metadata={"doc": "for alias / synonym entries: the canonical term"})

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not self.seg:
            raise Invalid("Idx atom needs a non-empty 'seg'")


@frozen
class Gate(_Change):
    """Change a threshold or priority of one compliance / budget gate."""

    gate: str = field(metadata={"doc": "gate name, e.g. 'budget'"})
    param: str = field(metadata={"doc": "e.g. 'threshold', 'priority', 'ceiling'"})
    delta: float | None = field(default=None, metadata={"doc": "amount to add"})
    value: float | bool | None = field(default=None, metadata={"doc": "value to set"})


Atom = Union[Op, Len, Idx, Gate]
ATOM_TYPES: dict[str, type] = {"Op": Op, "Len": Len, "Idx": Idx, "Gate": Gate}


def negate(atom: Atom) -> Atom:
    """Return the inverse of a delta atom (the same change with the opposite sign)."""
    if atom.delta is None:
        raise ValueError(f"{atom!r} sets a value; its inverse needs the prior value")
    return evolve(atom, delta=-atom.delta)


__all__ = ["Atom", "ATOM_TYPES", "Gate", "Idx", "Len", "Op", "Name", "negate"]
