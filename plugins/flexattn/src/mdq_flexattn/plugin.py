"""mdq hooks of mdq-flexattn. Registration reads only `params`: the reward engine, its catalog and
the frequency list load when a capability is first used."""

from __future__ import annotations

from typing import Any

import mdqcore

from .params import DEFAULT_TAU, GATES, KPIS, OPERATOR, PARAMS, POLICY_PARAMS, ROUTES, TERM_FEATURE

VERSION = "0.1.0"


def _split(params: dict[str, tuple[tuple[float, float], float]]) -> dict[str, Any]:
    return {"params": {k: b for k, (b, _d) in params.items()}, "defaults": {k: d for k, (_b, d) in params.items()}}


@mdqcore.hookimpl
def register_operators(register: Any) -> None:
    """The `flexattn` reward operator: its parameters (params.PARAMS), U2..U8 (the allowed term lengths) among them."""
    register(OPERATOR, "mdq_flexattn.reward:Scorer", version=VERSION, **_split(PARAMS))


@mdqcore.hookimpl
def register_length_policies(register: Any) -> None:
    """The phase-A `table` policy for L_h / L_p."""
    register("table", "mdq_flexattn.policy:table_policy", version=VERSION, **_split(POLICY_PARAMS))


@mdqcore.hookimpl
def register_index_features(register: Any) -> None:
    """`term`: a segment whose value is > 0 joins the catalog (membership, so max)."""
    register(TERM_FEATURE, version=VERSION, semiring="max")


def _gate(name: str) -> Any:
    def check(package: Any, state: Any) -> Any:
        from .engine import default_engine
        from .gates import SemanticGate

        return SemanticGate(name, default_engine)(package, state)

    check.__doc__ = f"The `{name}` relevance gate as a package test (mdq_flexattn.gates.SemanticGate)."
    return check


@mdqcore.hookimpl
def register_gates(register: Any) -> None:
    """Relevance gates: topic (the reward's default), windowed BM25-lite and Jaccard, each with its tau."""
    for name in GATES:
        register(name, _gate(name), version=VERSION, params={"tau": (0.0, 1.0)}, defaults={"tau": DEFAULT_TAU})


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
    """`mdq flexattn` (`mdq demo`, the live scenario, comes with mdq-serve)."""
    register("flexattn", "mdq_flexattn.commands:flexattn",
             help="Flex-Attn: score texts, the reference scenario, build the catalog, replay step logs.")


@mdqcore.hookimpl
def register_pipelines(register: Any) -> None:
    """The `reward` pipeline: POST /v1/reward and OpenRLHF's /get_reward, scored under the live state."""

    register("reward", "mdq_flexattn.pipeline:RewardPipeline", version=VERSION, routes=ROUTES, kpis=KPIS, inline=True,
             help="Score answers with the lexical reward (an RL trainer's remote reward model).")
