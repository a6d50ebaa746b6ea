"""mdq hooks of mdq-serve: the `mdq serve` and `mdq rollout` commands (the web stack loads only when they run)."""

from __future__ import annotations

from typing import Any

import mdqcore


@mdqcore.hookimpl
def register_commands(register: Any) -> None:
    """`mdq serve`, `mdq rollout status|promote|abort` and `mdq demo` (the live scenario)."""
    register("serve", "mdq_serve.commands:serve", help="Serve pipelines under the live control state (HTTP, loopback).")
    register("rollout", "mdq_serve.commands:rollout", help="Watch, promote or abort live canary rollouts.")
    register("demo", "mdq_serve.demo:demo", help="The main job: a reward service whose control plane changes live.")
