"""Controls come from the snapshot alone, with the registered defaults where the state is silent."""

import pytest

from mdq_generate.control import Controls, controls
from mdq_generate.params import PARAMS
from mdqcore.model.state import ControlState


def state(seq=0, **params):
    return ControlState({("param", "Op", "generate", k): v for k, v in params.items()}, seq=seq)


def test_defaults_without_a_state_or_params():
    for st in (None, ControlState()):
        c = controls(st)
        assert (c.best_of, c.window, c.window_scale, c.rank_lexical) == (1, False, 32, False)
    assert {k: d for k, (_b, d) in PARAMS.items()} == {"best_of": 1.0, "window": 0.0, "window_scale": 32.0,
                                                       "rank_lexical": 0.0}


def test_values_switches_and_rounding():
    c = Controls.of(state(seq=12, best_of=2.5, window=True, window_scale=3.4, rank_lexical=0.5))
    assert (c.best_of, c.window, c.window_scale, c.rank_lexical, c.seq) == (3, True, 3, True, 12)
    c = Controls.of(state(best_of=8.0, window=0.49, window_scale=1.0, rank_lexical=False))
    assert (c.best_of, c.window, c.window_scale, c.rank_lexical) == (8, False, 1, False)


@pytest.mark.parametrize("name,value", [("best_of", 9.0), ("best_of", 0.0), ("window_scale", float("nan")),
                                        ("window", 2.0)])
def test_a_value_outside_its_interval_is_refused(name, value):
    with pytest.raises(ValueError, match=f"'{name}'"):
        Controls.of(state(**{name: value}))
