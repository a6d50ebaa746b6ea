"""Small result records that capabilities return to the kernel."""

from __future__ import annotations

from attrs import frozen


@frozen
class GateResult:
    """What a gate says of a package: pass or refuse, and why."""

    ok: bool
    reason: str = ""

    @classmethod
    def passed(cls, reason: str = "") -> GateResult:
        """Return a passing result."""
        return cls(True, reason)

    @classmethod
    def refused(cls, reason: str) -> GateResult:
        """Return a refusing result; the reason is shown to the operator."""
        return cls(False, reason)
