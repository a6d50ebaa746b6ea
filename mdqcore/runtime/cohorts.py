"""Stable-hash routing of requests to cohorts and canaries."""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def bucket(key: str, salt: str = "") -> float:
    """Map a request key to a stable point in [0, 1): the same key always lands in the same place."""
    h = hashlib.blake2b(f"{salt}\x00{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "big") / _SCALE


def in_canary(key: str, fraction: float, salt: str = "") -> bool:
    """Tell whether a request key is routed to the canary that receives `fraction` of traffic."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"canary fraction must be within [0, 1], got {fraction}")
    return bucket(key, salt) < fraction
