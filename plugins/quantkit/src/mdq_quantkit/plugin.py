"""mdq hooks of mdq-quantkit: the `rtn` backend and the `mdq quantize` / `mdq eval` commands."""

from __future__ import annotations

from typing import Any

import mdqcore


def _rtn(**options: Any) -> Any:
    from .backends import RTN

    if options:
        raise TypeError(f"rtn takes no options, got {', '.join(options)}")
    return RTN()


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register round-to-nearest (no calibration)."""
    register("rtn", _rtn, version="0.1.0", calibration=False)


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """`mdq quantize` and `mdq eval`."""
    from .commands import eval_group, quantize

    register("quantize", quantize)
    register("eval", eval_group)
