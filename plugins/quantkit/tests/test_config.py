import pytest

from mdq_quantkit.config import QuantConfig


def test_groups_with_a_short_last_group():
    cfg = QuantConfig(4, 128)
    assert cfg.groups(576) == 5 and cfg.group(576) == 128  # 4 x 128 + 64 (SmolLM2's hidden size)
    assert QuantConfig(4, -1).groups(576) == 1 and cfg.maxq == 15
    assert QuantConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("bits", [1, 5, 16, True, "4"])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be one of"):
        QuantConfig(bits, 128)


@pytest.mark.parametrize("g", [0, -2, 1.5])
def test_bad_group_size(g):
    with pytest.raises(ValueError, match="group_size"):
        QuantConfig(4, g)


def test_group_larger_than_layer_and_unknown_keys():
    with pytest.raises(ValueError, match="larger than the layer"):
        QuantConfig(4, 1024).group(576)
    with pytest.raises(ValueError, match="unknown"):
        QuantConfig.from_json({"bits": 4, "group_size": 128, "sym": False, "desc_act": True})
