"""The `geoquant` operator's parameters (bounds, defaults) and how to read them: light, no torch."""

from __future__ import annotations

from typing import Any

OPERATOR = "geoquant"
PARAMS = {"tau_func": ((0.0, 4.0), 0.4), "tau_priv": ((0.0, 8.0), 0.6), "lambda_priv": ((0.0, 1.0), 0.5),
          "dppl": ((0.0, 100.0), 0.3), "entropy_bits": ((0.0, 1000.0), 8.0),
          "mia_dauc": ((0.0, 1.0), 0.1), "alpha": ((0.0, 1.0), 0.65),
          # mixed precision (select.py): the float16 budget, its scope (0 per layer, 1 whole model),
          # and tau_func calibrated as a percentile of each layer's MD
          "keep": ((0.0, 0.5), 0.01), "keep_scope": ((0.0, 1.0), 0.0), "md_percentile": ((0.0, 99.0), 50.0)}


def param(state: Any, name: str) -> float:
    """Read a geoquant parameter from the control state (the plugin default where it has none)."""
    v = state.param("Op", OPERATOR, name) if state is not None else None
    return float(PARAMS[name][1] if v is None else v)
