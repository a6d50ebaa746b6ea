"""What one control-state snapshot says about generation: read once per request, never cached across snapshots."""

from __future__ import annotations

import math
from typing import Any

from attrs import frozen

from .params import OPERATOR, PARAMS


def _param(state: Any, name: str) -> float:
    """One `generate` parameter from the state (the plugin default where the state has none), as a number."""
    v = state.param("Op", OPERATOR, name) if state is not None else None
    if v is None:
        return PARAMS[name][1]
    if isinstance(v, bool):  # a switch set with `"value": true`
        return 1.0 if v else 0.0
    v = float(v)
    lo, hi = PARAMS[name][0]
    if not math.isfinite(v) or not lo <= v <= hi:  # the kernel keeps values inside; a hand-made state may not
        raise ValueError(f"operator {OPERATOR!r} parameter {name!r} is {v!r}, outside its interval [{lo:g}, {hi:g}]")
    return v


@frozen
class Controls:
    """The generation controls of one snapshot (params.PARAMS says what each means)."""

    best_of: int
    window: bool
    window_scale: int
    rank_lexical: bool
    seq: int  # the snapshot's ledger entry, for the response's audit trail

    @classmethod
    def of(cls, state: Any) -> Controls:
        """Read every control from `state` (integers rounded half up, switches on at >= 0.5)."""
        return cls(best_of=int(math.floor(_param(state, "best_of") + 0.5)), window=_param(state, "window") >= 0.5,
                   window_scale=int(math.floor(_param(state, "window_scale") + 0.5)),
                   rank_lexical=_param(state, "rank_lexical") >= 0.5, seq=int(getattr(state, "seq", 0) or 0))


def controls(state: Any = None) -> Controls:
    """Factory registered as the `generate` operator: the controls `state` sets."""
    return Controls.of(state)
