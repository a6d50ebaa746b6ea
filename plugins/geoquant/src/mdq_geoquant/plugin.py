"""mdq hooks of mdq-geoquant: the `geoquant` operator (MD thresholds), outlier classifiers, `mdq geoquant`.

Everything is registered by reference: torch loads only when a capability is used.
"""

from __future__ import annotations

from typing import Any

import mdqcore

from .params import OPERATOR, PARAMS

VERSION = "0.1.0"


@mdqcore.hookimpl
def register_operators(register: Any) -> None:
    """`geoquant`: tau_func, tau_priv, lambda_priv, dppl, entropy_bits, mia_dauc, alpha (MD thresholds, classifier thresholds)."""
    register(OPERATOR, "mdq_geoquant.constrained:MDConstrained", version=VERSION,
             params={k: b for k, (b, _d) in PARAMS.items()}, defaults={k: d for k, (_b, d) in PARAMS.items()})


def _selector(scorer: str) -> Any:
    def factory(state: Any = None, **options: Any) -> Any:
        from .select import RowSelector

        return RowSelector(scorer, state, **options)

    return factory


@mdqcore.hookimpl
def register_outlier_classifiers(register: Any) -> None:
    """`functional` (Fisher-estimated dPPL >= 0.3) and `sensitive` (encoding entropy >= 8 bits or MIA dAUC >= 0.1);
    the row selectors of `mdq quantize --outliers` (selects_rows=True): `geoquant`, `md`, `kfac`, `hessian`,
    `weight-error`, `random`."""
    register("functional", "mdq_geoquant.classify:FunctionalClassifier", version=VERSION)
    register("sensitive", "mdq_geoquant.classify:SensitiveClassifier", version=VERSION)
    for name in ("geoquant", "md", "kfac", "hessian", "weight-error", "random"):
        register(name, _selector(name), version=VERSION, selects_rows=True)


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """`mdq geoquant md|report`."""
    register("geoquant", "mdq_geoquant.commands:geoquant",
             help="GeoQuant: manifold distortion (MD) of quantized weights and its report.")
