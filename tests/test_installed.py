"""`mdq resolve --installed`: installed plugins' requirements on mdq distributions (issue #3)."""

from __future__ import annotations

import mdqcore
from mdqcore.cli.installed import check_installed


def test_installed_requirements_hold_and_broken_ones_are_explained(make_dist, tmp_path):
    make_dist("needsnew", "", dist="mdq-needsnew")
    make_dist("needsgone", "", dist="mdq-needsgone")
    for dist, req in (("mdq_needsnew", "mdqcore>=99.0"), ("mdq_needsgone", "mdq-absent>=1")):
        meta = tmp_path / f"{dist}-1.0.0.dist-info" / "METADATA"
        meta.write_text(meta.read_text() + f"Requires-Dist: {req}\nRequires-Dist: numpy>=1\n")
    checks = {c.distribution: c for c in check_installed()}
    assert not checks["mdq-needsnew"].ok
    assert checks["mdq-needsnew"].explain() == (
        f"mdq-needsnew 1.0.0 requires mdqcore>=99.0, and mdqcore {mdqcore.__version__} is installed")
    assert checks["mdq-needsgone"].explain() == "mdq-needsgone 1.0.0 requires mdq-absent>=1, and mdq-absent is not installed"
    assert all("numpy" not in c.requirement for c in checks.values())  # not an mdq distribution: pip's job
