"""mdq hooks of mdq-awq: the `awq` quantizer backend (torch loads only when it is used)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register AWQ: factory(n_grid=20, grid_windows=4, grid_tokens=2048, clip_tokens=512, clip=True, seed=0)."""
    register("awq", "mdq_awq.awq:AWQ", version="0.1.0")
