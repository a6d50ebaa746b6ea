"""mdq hooks of mdq-quantkit: the `rtn` backend and the `mdq quantize` / `mdq eval` commands (torch loads on use)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_quantizers(register: Any) -> None:
    """Register round-to-nearest (no calibration, no options)."""
    register("rtn", "mdq_quantkit.backends:RTN", version="0.1.0")


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """`mdq quantize` and `mdq eval`."""
    register("quantize", "mdq_quantkit.commands:quantize",
             help="Quantize a model's linear layers and save it, block by block.")
    register("eval", "mdq_quantkit.commands:eval_group", help="Evaluate models (perplexity).")
