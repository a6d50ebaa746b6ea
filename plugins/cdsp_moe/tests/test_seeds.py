"""Seed lists: ranges, lists, repeats, and malformed text as errors that say which part."""

import pytest

from mdq_cdsp_moe.seeds import parse_seeds


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3, 0-1,3") == [3, 0, 1]
    with pytest.raises(ValueError, match="backwards"):
        parse_seeds("4-0")


@pytest.mark.parametrize("bad", ["4-0", "a", "0-", "-1", "", "0,,2", "1-2-3"])
def test_malformed_seed_lists_say_which_part(bad):
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(bad)
