"""The operator policy: what every package must pass, whatever the package itself asks for.

The policy lives in the ledger as `policy` events (a state path every cohort shares), so it is
audited, replicated to every server and replayed like everything else. A policy set while keys
are trusted must be signed by one of them; an unsigned or wrongly signed policy in effect
refuses every package (fail closed). With no policy event the defaults below apply: the core
gates are mandatory, shadow analysis needs at least one recorded input, nothing may be skipped.
"""

from __future__ import annotations

from typing import Any

from attrs import asdict, field, frozen

from ..errors import DocumentError, PolicyError, SignatureError
from ..ledger.base import canonical
from ..model.convert import structure
from ..model.jsontext import Limits
from ..signing import TrustPolicy, sign_bytes

PATH = ("policy",)


@frozen
class Canary:
    """How a canary is analysed (`mdq serve` and `mdq pkg apply --canary` share it)."""

    fraction: float = 0.1  # share of live requests routed to the staged state
    interval_s: float = 10.0  # one analysis event per interval
    intervals: int = 3  # passing intervals in a row needed to promote
    min_requests: int = 20  # per arm and interval; fewer and the interval does not count
    timeout_s: float = 600.0  # a rollout without enough traffic for this long is rolled back
    margin: float = 0.05  # a KPI may be this share of the active arm's mean worse, plus the package's tolerance
    z: float = 1.645  # how many standard errors a difference must clear (one-sided 95%)


@frozen
class Policy:
    """Operator-owned rules (see the module docstring); every field has a fail-closed default."""

    mandatory_gates: dict[str, list[str]] = field(factory=lambda: {"*": ["legal", "budget", "blacklist"]})
    kpi_ceiling: dict[str, float] = field(factory=lambda: {"*": 0.05})  # largest tolerance a package may ask
    required_kpis: list[str] = field(factory=list)  # KPIs some loaded evaluator must measure
    min_shadow_inputs: int = 1
    allow_skip_shadow: bool = False  # with too few inputs: record `shadow_skipped` instead of refusing
    require_signatures: bool = False  # also on whenever the trust file lists a key
    delegations: dict[str, list[str]] = field(factory=dict)  # package-name prefix -> key ids that may sign it
    limits: Limits = field(factory=Limits)
    max_atoms: int = 100_000
    canary: Canary = field(factory=Canary)
    inflight_timeout_s: float = 900.0  # an apply from another host silent this long is closed as aborted

    def gates_for(self, cohort: str) -> list[str]:
        """Return the gates every package applied to `cohort` must pass."""
        return list(dict.fromkeys(self.mandatory_gates.get("*", []) + self.mandatory_gates.get(cohort, [])))

    def ceiling(self, kpi: str) -> float:
        """Return the largest regression tolerance a package may ask for on `kpi`."""
        return self.kpi_ceiling.get(kpi, self.kpi_ceiling.get("*", 0.0))

    def to_json(self) -> dict[str, Any]:
        """Return the policy as a JSON document."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any, *, source: str = "policy") -> Policy:
        """Build a policy from JSON; unknown keys and wrong types are `what @ $.path` errors."""
        try:
            return structure(doc, cls, source=source)
        except DocumentError as exc:
            raise PolicyError(str(exc)) from None


def in_effect(state: Any, trust: TrustPolicy) -> Policy:
    """Return the policy recorded in `state`, checking its signature; refuse (PolicyError) one not to be trusted."""
    entry = state.get(PATH)
    if entry is None:
        return Policy()
    policy = Policy.from_json(entry["doc"], source="the policy in effect")
    if trust.enforced or policy.require_signatures:
        if not entry.get("signature"):
            raise PolicyError("the policy in effect is unsigned but signatures are required: set it again with "
                              "`mdq policy set FILE --key KEY` (a trusted key)")
        try:
            trust.verify_bytes(entry["signature"], _signed(entry["doc"]), what="the policy in effect")
        except SignatureError as exc:
            raise PolicyError(f"{exc}; every package is refused until a trusted key signs the policy") from None
    return policy


def _signed(doc: Any) -> bytes:
    return canonical(doc).encode("utf-8")


def policy_diff(state: Any, doc: Any, private: Any | None) -> list[tuple[tuple[str, ...], Any, Any]]:
    """Return the diff that makes `doc` (validated) the policy in effect, signed by `private` if given."""
    clean = Policy.from_json(doc).to_json()
    entry = {"doc": clean, "signature": sign_bytes(_signed(clean), private) if private is not None else None}
    return [(PATH, state.get(PATH), entry)]
