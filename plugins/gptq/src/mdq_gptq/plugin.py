"""mdq hooks of mdq-gptq: the `gptq` quantizer backend."""

from __future__ import annotations

from typing import Any

import mdqcore


def _factory(**options: Any) -> Any:
    from .gptq import GPTQ

    return GPTQ(**options)


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register GPTQ: factory(blocksize=128, damp=0.01, act_order=True, true_sequential=True)."""
    register("gptq", _factory, version="0.1.0", calibration=True)
