"""mdq-plugin-template: a gate that refuses MDQ packages with too many atoms."""

from __future__ import annotations

from typing import Any

import mdqcore

DEFAULT_MAX_ATOMS = 100


class AtomBudget:
    """Refuse packages with more than `max_atoms` atoms: big packages are hard to review and undo."""

    def __init__(self, max_atoms: int = DEFAULT_MAX_ATOMS) -> None:
        if max_atoms < 1:
            raise ValueError(f"max_atoms must be >= 1, got {max_atoms}")
        self.max_atoms = max_atoms

    def __call__(self, package: mdqcore.MdqPackage, state: Any = None) -> mdqcore.GateResult:
        """Check one package against the budget."""
        n = len(package.atoms)
        if n > self.max_atoms:
            return mdqcore.GateResult.refused(
                f"{package.ref} has {n} atoms, over the budget of {self.max_atoms}; split it into smaller packages")
        return mdqcore.GateResult.passed(f"{n} <= {self.max_atoms} atoms")


@mdqcore.hookimpl
def register_gates(register: Any) -> None:
    """Register the atom-budget gate."""
    register("atom-budget", AtomBudget())
