"""The plugin's registration data: routes, KPIs and the `generate` operator's parameters. Light:
registering the plugin reads this module only (no torch, no transformers, no model)."""

from __future__ import annotations

PIPELINE = "generate"
ROUTES = ("/v1/completions", "/v1/chat/completions")

OPERATOR = "generate"
# parameter: (admissible interval, default) of the `generate` operator
PARAMS = {
    # candidates generated per returned choice; the highest Flex-Attn reward wins (1 = no reranking)
    "best_of": ((1.0, 8.0), 1.0),
    # 1 = the per-position L_h window attention replaces the model's attention (a switch: >= 0.5 is on)
    "window": ((0.0, 1.0), 0.0),
    # tokens per unit of L_h: the window of a position is window_scale x the `table` policy's L_h there
    "window_scale": ((1.0, 1024.0), 32.0),
    # 1 = rank candidates by the lexical reward first (ties by the total); 0 = by the total reward
    "rank_lexical": ((0.0, 1.0), 0.0),
}

# KPI observations, one per returned choice, and which way is better (judged by live canaries)
KPIS = {
    "gen_reward": "higher",        # the choice's total Flex-Attn reward against its question
    "gen_lexical": "higher",       # its lexical part (domain terms, relevance-gated, IDF-weighted)
    "gen_truncated": "lower",      # 1 when max_tokens cut the choice off, else 0
    "gen_tokens_spent": "lower",   # tokens generated per returned choice, discarded candidates included
    "gen_ms_per_token": "lower",   # generation wall time per generated token (the window's cost or gain)
}

MODEL_ENV = "MDQ_GENERATE_MODEL"  # 'smollm2-135m' (default), a Hugging Face directory or an `mdq quantize` output
MODEL_NAME_ENV = "MDQ_GENERATE_MODEL_NAME"  # the name clients send as `model` (default: from the model spec)
DEFAULT_MODEL = "smollm2-135m"
WINDOW_BACKEND_ENV = "MDQ_GENERATE_WINDOW_BACKEND"  # 'dense' (default: masked SDPA), 'flex' or 'auto'
PAIRED_ENV = "MDQ_GENERATE_PAIRED"  # '1': answer `observe` (a second generation per canary request) for paired KPIs
