"""mdq hooks of mdq-calculus: the `mdq propose` command (numpy loads only when it runs)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """Register `mdq propose`."""
    register("propose", "mdq_calculus.commands:propose",
             help="Turn measured marginal values into a reversible candidate package.")
