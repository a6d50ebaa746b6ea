"""mdq hooks of mdq-awq: the `awq` quantizer backend."""

from __future__ import annotations

from typing import Any

import mdqcore


def _factory(**options: Any) -> Any:
    from .awq import AWQ

    return AWQ(**options)


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register AWQ: factory(n_grid=20, max_tokens=4096, clip_tokens=512, clip=True)."""
    register("awq", _factory, version="0.1.0", calibration=True)
