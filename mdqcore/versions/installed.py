"""The installed mdq distributions (mdqcore and every plugin) and their versions as SemVer."""

from __future__ import annotations

from importlib import metadata

from packaging.utils import canonicalize_name

from ..plugins import GROUP


def mdq_distributions() -> dict[str, metadata.Distribution]:
    """Return mdqcore and every distribution with an entry point in group mdq.plugins."""
    dists: dict[str, metadata.Distribution] = {}
    for d in metadata.distributions():
        name = canonicalize_name(d.metadata["Name"] or "")
        if name == "mdqcore" or any(ep.group == GROUP for ep in d.entry_points):
            dists.setdefault(name, d)
    return dists


def semver_of(version: str) -> str:
    """Turn a PEP 440 release like 0.1 or 1.2.3 into SemVer (extra parts dropped)."""
    parts = version.split("+")[0].split(".")[:3]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts] + [0, 0, 0]
    return f"{nums[0]}.{nums[1]}.{nums[2]}"
