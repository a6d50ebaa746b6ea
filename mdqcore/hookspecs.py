"""The kernel's whole contract with plugins: one documented stub per capability kind.

Every hook receives a `register` callback owned by the kernel, so that de-duplication,
validation and provenance (which plugin, which distribution version) happen in one place:

    register(name, obj, *, version=None, **meta)

`version` is the capability's own version (e.g. an operator set's schema version for the
compatibility matrix); it defaults to the plugin distribution's version. `meta` carries the
kind-specific metadata each stub documents.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "mdq"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]


@hookspec
def register_operators(register: Register) -> None:
    """Register Lex-KAT operators: register(name, factory, params={"param": (lo, hi), ...}).

    `params` maps each tunable parameter to its admissible closed interval; Op atoms are
    clipped into it, e.g. ``register("L", LexicalOp, params={"lambda_lex": (0.0, 1.0)})``.
    """


@hookspec
def register_length_policies(register: Register) -> None:
    """Register L_h / L_p window policies: register(name, factory).

    The factory takes the control state and returns an object choosing (L_h, L_p) per step.
    """


@hookspec
def register_index_features(register: Register) -> None:
    """Register index features phi_k: register(name, factory, semiring="sum" | "max").

    The semiring says how Idx atoms of this family accumulate: weighted sum or maximum.
    """


@hookspec
def register_gates(register: Register) -> None:
    """Register hard gates (legal, budget, blacklist, ...): register(name, check).

    ``check(package, state) -> mdqcore.GateResult``; a package naming the gate in its
    `tests` is refused before anything is staged when the result is not ok.
    """


@hookspec
def register_evaluators(register: Register) -> None:
    """Register KPI evaluators for shadow and canary comparison: register(name, evaluate).

    ``evaluate(state, inputs) -> dict[str, float]`` of KPI values, higher-is-better unless
    the evaluator passes ``lower_is_better=("kpi", ...)`` as metadata.
    """


@hookspec
def register_quantizers(register: Register) -> None:
    """Register quantizer backends (rtn, gptq, awq, ...): register(name, factory)."""


@hookspec
def register_outlier_classifiers(register: Register) -> None:
    """Register outlier classifiers (functional, sensitive, ...): register(name, factory)."""


@hookspec
def register_moe_projectors(register: Register) -> None:
    """Register MoE projector layers: register(name, factory)."""


@hookspec
def register_compat_rules(register: Register) -> None:
    """Register compatibility rules: register(name, rule).

    ``rule(versions: dict[str, str]) -> (verdict, reason) | None`` where verdict is
    "ok", "warn" or "reject" over e.g. {"operator": "2.1.0", "index": "3.0.0", "gate": "1.4.0"}.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register `mdq` sub-commands: register(name, click_command)."""


@hookspec
def register_ledger_backends(register: Register) -> None:
    """Register ledger backends: register(name, factory, schemes=("sqlite",)).

    ``factory(url: str)`` opens the ledger a URL with one of `schemes` names.
    """


def hook_names() -> tuple[str, ...]:
    """Return the names of every hook the kernel defines, in declaration order."""
    return tuple(n for n, v in globals().items() if n.startswith("register_") and callable(v))

