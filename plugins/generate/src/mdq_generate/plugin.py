"""mdq hooks of mdq-generate. Registration reads only `params`: torch, transformers and the model
load when the pipeline first answers a request."""

from __future__ import annotations

from typing import Any

import mdqcore

from .params import KPIS, OPERATOR, PARAMS, PIPELINE, ROUTES

VERSION = "0.1.0"


@mdqcore.hookimpl
def register_operators(register: Any) -> None:
    """The `generate` operator: best-of-n, the window switch and its scale, the ranking key (params.PARAMS)."""
    register(OPERATOR, "mdq_generate.control:controls", version=VERSION,
             params={k: b for k, (b, _d) in PARAMS.items()}, defaults={k: d for k, (_b, d) in PARAMS.items()})


@mdqcore.hookimpl
def register_pipelines(register: Any) -> None:
    """The `generate` pipeline: OpenAI-compatible POST /v1/completions and /v1/chat/completions."""
    register(PIPELINE, "mdq_generate.pipeline:GeneratePipeline", version=VERSION, routes=ROUTES, kpis=KPIS,
             help="OpenAI-compatible completions; best-of-n by the Flex-Attn reward and the L_h window from the state.")
