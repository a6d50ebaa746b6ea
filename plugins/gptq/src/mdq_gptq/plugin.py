"""mdq hooks of mdq-gptq: the `gptq` quantizer backend (torch loads only when it is used)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register GPTQ: factory(blocksize=128, damp=0.01, act_order=True, true_sequential=True)."""
    register("gptq", "mdq_gptq.gptq:GPTQ", version="0.1.0")
