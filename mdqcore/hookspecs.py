"""The kernel's whole contract with plugins: one documented stub per capability kind, one table of kinds.

Every hook receives a `register` callback owned by the kernel, so that de-duplication,
validation and provenance (which plugin, which distribution version) happen in one place:

    register(name, obj, *, version=None, **meta)

`obj` is the capability itself or, better, a lazy reference "package.module:attr" that is
imported on first use, so that registering a plugin imports nothing heavy. `version` is the
capability's own version (e.g. an operator set's schema version for the compatibility matrix);
it defaults to the plugin distribution's version. `meta` is checked against the kind's
metadata TypedDict below: an unknown key or a value of the wrong type is a registration error.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Required, TypedDict

import pluggy

PROJECT = "mdq"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[..., None]
Intervals = Mapping[str, tuple[float, float]]


class OperatorMeta(TypedDict, total=False):
    """Metadata of an operator: its tunable parameters."""

    params: Required[Intervals]  # parameter -> admissible closed interval an Op atom must stay inside
    defaults: Mapping[str, float]  # parameter -> starting value (else the interval's lower end)


class LengthPolicyMeta(TypedDict, total=False):
    """Metadata of a length policy."""

    params: Intervals  # parameter -> admissible closed interval (Lh_max, Lp_max, lambda_h, ...)
    defaults: Mapping[str, float]  # parameter -> starting value
    default: bool  # Len atoms without a `policy` change this one


class IndexFeatureMeta(TypedDict, total=False):
    """Metadata of an index feature family."""

    semiring: Required[Literal["sum", "max"]]  # how Idx deltas of the family accumulate
    weight: float  # w_k in I(seg) = sum_k w_k phi_k(seg); default 1


class GateMeta(TypedDict, total=False):
    """Metadata of a gate: its thresholds."""

    params: Intervals  # threshold -> admissible closed interval; Gate atoms change them
    defaults: Mapping[str, float]  # threshold -> starting value


class EvaluatorMeta(TypedDict, total=False):
    """Metadata of a KPI evaluator."""

    lower_is_better: Sequence[str]  # KPI names where a drop is an improvement


class NoMeta(TypedDict, total=False):
    """This kind takes no metadata."""


class CommandMeta(TypedDict, total=False):
    """Metadata of a CLI sub-command."""

    help: str  # the one-line summary `mdq --help` shows without importing the command


class OutlierMeta(TypedDict, total=False):
    """Metadata of an outlier classifier."""

    selects_rows: bool  # a row selector for `mdq quantize --outliers` (wrap / apply), not only a classifier


class LedgerBackendMeta(TypedDict, total=False):
    """Metadata of a ledger backend."""

    schemes: Required[Sequence[str]]  # URL schemes it opens ("" for plain paths)


class PipelineMeta(TypedDict, total=False):
    """Metadata of a served pipeline."""

    routes: Required[Sequence[str]]  # HTTP POST paths it answers, e.g. "/v1/reward"
    kpis: Mapping[str, Literal["higher", "lower"]]  # KPI observations it returns, and which way is better
    help: str
    inline: bool  # quick pure-Python work: served on the event loop, not handed to a worker thread


@dataclass(frozen=True)
class Kind:
    """One capability kind: the hook that fills it, its metadata, and what `obj` must be."""

    name: str
    hook: str
    meta: type
    obj: str  # what the registered object is, for errors and docs
    needs_obj: bool = True


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("operator", "register_operators", OperatorMeta, "factory(state) -> operator"),
    Kind("length_policy", "register_length_policies", LengthPolicyMeta, "factory(state) -> policy"),
    Kind("index_feature", "register_index_features", IndexFeatureMeta, "nothing (a feature is data)", False),
    Kind("gate", "register_gates", GateMeta, "check(package, state) -> GateResult"),
    Kind("evaluator", "register_evaluators", EvaluatorMeta, "evaluate(state, inputs) -> {kpi: float}"),
    Kind("quantizer", "register_quantizers", NoMeta, "factory(**options) -> mdqcore.protocols.Quantizer"),
    Kind("outlier_classifier", "register_outlier_classifiers", OutlierMeta,
         "factory(**options) -> mdqcore.protocols.OutlierClassifier"),
    Kind("moe_projector", "register_moe_projectors", NoMeta, "factory(**config) -> mdqcore.protocols.MoEProjector"),
    Kind("compat_rule", "register_compat_rules", NoMeta, "rule(versions) -> (verdict, reason) | None"),
    Kind("command", "register_commands", CommandMeta, "a click.Command"),
    Kind("ledger_backend", "register_ledger_backends", LedgerBackendMeta, "factory(url, *, readonly) -> Ledger"),
    Kind("pipeline", "register_pipelines", PipelineMeta, "factory() -> mdqcore.protocols.Pipeline"),
)}


@hookspec
def register_operators(register: Register) -> None:
    """Register Lex-KAT operators: register(name, factory, params={"param": (lo, hi), ...}, defaults={...}).

    Called once per process when plugins load. `params` maps each tunable parameter to its
    admissible closed interval; Op atoms are checked against it, e.g.
    ``register("L", "my_plugin.ops:LexicalOp", params={"lambda_lex": (0.0, 1.0)}, defaults={"lambda_lex": 0.3})``.
    """


@hookspec
def register_length_policies(register: Register) -> None:
    """Register L_h / L_p window policies: register(name, factory, params={...}, defaults={...}, default=True).

    Called once when plugins load. The factory takes the control state and returns an object
    choosing (L_h, L_p) per step, e.g. ``register("table", "my_plugin.policy:table_policy")``.
    """


@hookspec
def register_index_features(register: Register) -> None:
    """Register index features phi_k: register(name, semiring="sum" | "max", weight=1.0).

    Called once when plugins load. The semiring says how Idx atoms of this family accumulate:
    weighted sum or maximum, e.g. ``register("idf", semiring="sum")``.
    """


@hookspec
def register_gates(register: Register) -> None:
    """Register hard gates (legal, budget, blacklist, ...): register(name, check, params={...}).

    ``check(package, state) -> mdqcore.GateResult``, called during `apply` before anything is
    staged, for every gate the package lists and every gate the operator policy makes
    mandatory; a result that is not ok refuses the package, e.g.
    ``register("atom-budget", "my_plugin.gates:atom_budget")``.
    """


@hookspec
def register_evaluators(register: Register) -> None:
    """Register KPI evaluators for shadow and canary comparison: register(name, evaluate, lower_is_better=(...)).

    ``evaluate(state, inputs) -> dict[str, float]`` of KPI values (higher is better unless
    named in `lower_is_better`), called on the active and the staged state during shadow and
    canary analysis, e.g. ``register("coverage", "my_plugin.kpis:coverage")``.
    """


@hookspec
def register_quantizers(register: Register) -> None:
    """Register quantizer backends (rtn, gptq, awq, ...): register(name, factory).

    ``factory(**options)`` returns an object with the `mdqcore.protocols.Quantizer` interface;
    called by `mdq quantize`, e.g. ``register("gptq", "mdq_gptq.gptq:GPTQ")``.
    """


@hookspec
def register_outlier_classifiers(register: Register) -> None:
    """Register outlier classifiers / row selectors: register(name, factory).

    ``factory(**options)`` returns an `mdqcore.protocols.OutlierClassifier`, e.g.
    ``register("functional", "mdq_geoquant.classify:FunctionalClassifier")``.
    """


@hookspec
def register_moe_projectors(register: Register) -> None:
    """Register MoE projector layers: register(name, factory).

    ``factory(**config)`` returns an `mdqcore.protocols.MoEProjector` (a torch module), e.g.
    ``register("cdsp", "mdq_cdsp_moe.plugin:make_layer")``.
    """


@hookspec
def register_compat_rules(register: Register) -> None:
    """Register compatibility rules: register(name, rule).

    ``rule(versions: dict[str, str]) -> (verdict, reason) | None`` where verdict is "ok", "warn"
    or "reject" over e.g. {"operator": "2.1.0", "index": "3.0.0", "gate": "1.4.0"}; called by
    `mdq compat` and when a package's `requires` names an axis.
    """


@hookspec
def register_commands(register: Register) -> None:
    """Register `mdq` sub-commands: register(name, command, help="one line").

    The command (a click.Command, best given as "module:attr") is imported only when it runs
    or its own --help is asked for; `mdq --help` shows `help`, e.g.
    ``register("hello", "mdq_hello.cli:hello", help="Say hello.")``.
    """


@hookspec
def register_ledger_backends(register: Register) -> None:
    """Register ledger backends: register(name, factory, schemes=("sqlite",)).

    ``factory(url: str, *, readonly: bool = False)`` opens the ledger a URL with one of
    `schemes` names; readers open with readonly=True and must never write.
    """


@hookspec
def register_pipelines(register: Register) -> None:
    """Register served pipelines: register(name, factory, routes=("/v1/reward",), help="...").

    ``factory()`` returns an `mdqcore.protocols.Pipeline`; `mdq serve` calls
    ``pipeline.handle(route, body, state)`` with one control-state snapshot per request and
    judges live canaries on the KPI observations it returns (directions from `kpis`).
    """


def hook_names() -> tuple[str, ...]:
    """Return the names of every hook the kernel defines, in declaration order."""
    return tuple(n for n, v in globals().items() if n.startswith("register_") and callable(v))


def _check_table() -> None:
    stubs, kinds = set(hook_names()), {k.hook for k in KINDS.values()}
    if stubs != kinds:  # the two lists must never drift apart
        raise AssertionError(f"hookspecs and KINDS disagree: {sorted(stubs ^ kinds)}")


_check_table()
__all__ = ["KINDS", "Kind", "PROJECT", "Register", "hook_names", "hookimpl", "hookspec"]
