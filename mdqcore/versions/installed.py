"""Check that installed mdq plugins' requirements on the kernel and on each other hold.

Distribution requirements are PEP 440 specifiers, not SemVer ranges, so they are checked
with `packaging` (the library pip itself uses) rather than translated.
"""

from __future__ import annotations

from importlib import metadata

from attrs import frozen
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..plugins import GROUP


@frozen
class InstalledCheck:
    """One requirement of one installed mdq distribution and whether it holds."""

    distribution: str
    version: str
    requirement: str
    installed: str | None
    ok: bool

    def explain(self) -> str:
        """Say the requirement and what is installed."""
        dep = Requirement(self.requirement)
        have = f"{dep.name} {self.installed} is installed" if self.installed else f"{dep.name} is not installed"
        return f"{self.distribution} {self.version} requires {self.requirement}, and {have}"


def mdq_distributions() -> dict[str, metadata.Distribution]:
    """Return mdqcore and every distribution with an entry point in group mdq.plugins."""
    dists: dict[str, metadata.Distribution] = {}
    for d in metadata.distributions():
        name = canonicalize_name(d.metadata["Name"] or "")
        if name == "mdqcore" or any(ep.group == GROUP for ep in d.entry_points):
            dists.setdefault(name, d)
    return dists


def check_installed() -> list[InstalledCheck]:
    """Check every requirement an mdq distribution has on another mdq distribution."""
    dists = mdq_distributions()
    out = []
    for name, d in sorted(dists.items()):
        for text in d.requires or []:
            try:
                req = Requirement(text)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep not in dists and dep != "mdqcore" and not dep.startswith("mdq-"):
                continue  # not an mdq distribution: pip's business, not ours
            have = dists[dep].version if dep in dists else None
            ok = have is not None and req.specifier.contains(have, prereleases=True)
            out.append(InstalledCheck(d.metadata["Name"], d.version, str(req), have, ok))
    return out


def semver_of(version: str) -> str:
    """Turn a PEP 440 release like 0.1 or 1.2.3 into SemVer (extra parts dropped)."""
    parts = [p for p in version.split("+")[0].split(".")[:3]]
    nums = [int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts] + [0, 0, 0]
    return f"{nums[0]}.{nums[1]}.{nums[2]}"
