"""`mdq resolve --installed`: do installed mdq plugins' requirements on the kernel and on each other hold?

Distribution requirements are PEP 440 specifiers, not SemVer ranges, so they are checked
with `packaging` (the library pip itself uses) rather than translated.
"""

from __future__ import annotations

from attrs import frozen
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..versions.installed import mdq_distributions


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
