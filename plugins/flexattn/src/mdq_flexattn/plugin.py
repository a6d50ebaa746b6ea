"""mdq hooks of mdq-flexattn. Kept light: nothing heavy (torch, the frequency list) loads at import."""

from __future__ import annotations

from typing import Any

import mdqcore

from . import policy, reward
from .catalog import TERM_FEATURE
from .gates import DEFAULT_TAU, GATES, SemanticGate

VERSION = "0.1.0"


def _engine() -> Any:
    from .engine import default_engine

    return default_engine()


def _split(params: dict[str, tuple[tuple[float, float], float]]) -> dict[str, Any]:
    return {"params": {k: b for k, (b, _d) in params.items()}, "defaults": {k: d for k, (_b, d) in params.items()}}


@mdqcore.hookimpl
def register_operators(register: Any) -> None:
    """The `flexattn` reward operator: its parameters (reward.PARAMS), U2..U8 (the allowed term lengths) among them."""
    from .reward import Scorer  # light: torch is not imported by the reward module

    register(reward.OPERATOR, Scorer, version=VERSION, **_split(reward.PARAMS))


@mdqcore.hookimpl
def register_length_policies(register: Any) -> None:
    """The phase-A `table` policy for L_h / L_p."""
    register("table", policy.table_policy, version=VERSION, **_split(policy.PARAMS))


@mdqcore.hookimpl
def register_index_features(register: Any) -> None:
    """`term`: a segment whose value is > 0 joins the catalog (membership, so max)."""
    register(TERM_FEATURE, version=VERSION, semiring="max")


@mdqcore.hookimpl
def register_gates(register: Any) -> None:
    """Relevance gates: topic (the reward's default), windowed BM25-lite and Jaccard, each with its tau."""
    for name in GATES:
        register(name, SemanticGate(name, _engine), version=VERSION, params={"tau": (0.0, 1.0)},
                 defaults={"tau": DEFAULT_TAU})


def _evaluator(fn_name: str) -> Any:
    def evaluate(state: Any, inputs: Any) -> dict[str, float]:
        from . import kpis

        return getattr(kpis, fn_name)(state, inputs)

    evaluate.__doc__ = f"KPI evaluator backed by mdq_flexattn.kpis.{fn_name}."
    return evaluate


@mdqcore.hookimpl
def register_evaluators(register: Any) -> None:
    """KPIs: term coverage, word non-compliance, reward and length-cost totals."""
    register("term_coverage", _evaluator("coverage"), version=VERSION)
    register("word_compliance", _evaluator("compliance"), version=VERSION, lower_is_better=("w_nc",))
    register("lexical_reward", _evaluator("reward"), version=VERSION, lower_is_better=("len_cost_total",))


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """`mdq demo` and `mdq flexattn`."""
    register("demo", "mdq_flexattn.commands:demo", help="Run the Flex-Attn reference scenario and a live hot-plug.")
    register("flexattn", "mdq_flexattn.commands:flexattn", help="Flex-Attn: score texts with the lexical reward, replay step logs.")
