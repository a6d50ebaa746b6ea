"""Seed lists as a user writes them (`--seeds 0-4`, `0,2,5`): light, no numpy or torch."""

from __future__ import annotations


def parse_seeds(text: str) -> list[int]:
    """Parse '0-4', '0,2,5' or '3' into distinct non-negative seeds; a malformed list is a ValueError saying which part."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"seeds {text!r}: {part!r} is neither a seed nor a range like 0-4")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"seeds {text!r}: the range {part!r} runs backwards (write {b}-{a})")
        out += [s for s in range(a, b + 1) if s not in out]
    return out
