"""MD variants: attention + output, and mixtures of experts."""

import pytest
import torch

from mdq_geoquant.variants import expert_priv_thresholds, md_moe, md_total, normal_cosine


def test_md_total_and_eta():
    a = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    b = torch.tensor([[1.0, 1.0], [3.0, 3.0]])
    eta = normal_cosine(a, b)
    assert eta == pytest.approx(2**-0.5)
    assert md_total(0.5, 0.8, eta, alpha=0.6) == pytest.approx(0.6 * 0.5 + 0.4 * 0.8 * eta)
    with pytest.raises(ValueError, match="one space"):
        normal_cosine(a, torch.ones(2, 3))
    with pytest.raises(ValueError, match="alpha"):
        md_total(0.5, 0.5, 0.5, alpha=1.5)


def test_md_moe_and_hot_expert_thresholds():
    assert md_moe([0.2, 0.6], [0.25, 0.75]) == pytest.approx(0.5)
    assert expert_priv_thresholds([0.1, 0.9], 0.6) == pytest.approx([0.6, 0.6 * 0.875])
    with pytest.raises(ValueError, match="sum to 1"):
        md_moe([0.2, 0.6], [0.5, 0.6])
    with pytest.raises(ValueError, match="one activation frequency per expert"):
        md_moe([0.2, 0.6, 0.1], [0.5, 0.5])
