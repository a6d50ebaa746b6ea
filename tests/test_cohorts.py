"""Stable-hash routing (issue #4)."""

import pytest

from mdqcore.runtime.cohorts import bucket, in_canary


def test_routing_is_stable_and_proportional():
    keys = [f"req-{i}" for i in range(10_000)]
    first = [in_canary(k, 0.1, "s") for k in keys]
    assert first == [in_canary(k, 0.1, "s") for k in keys]
    assert 900 < sum(first) < 1100
    assert all(0.0 <= bucket(k) < 1.0 for k in keys[:100])


def test_bad_fraction():
    with pytest.raises(ValueError, match="within \\[0, 1\\]"):
        in_canary("k", 1.5)
