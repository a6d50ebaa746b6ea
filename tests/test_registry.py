"""The capability registry: lookup, errors that help, all-or-nothing adds (issue #2)."""

from __future__ import annotations

import pytest

from mdqcore import DuplicateCapabilityError, RegistrationError, Registry, UnknownCapabilityError
from mdqcore.registry import KINDS


def _cap(reg: Registry, kind: str, name: str, plugin: str = "p", **meta):
    return reg.make_capability(kind, name, object(), plugin=plugin, distribution=f"mdq-{plugin}",
                               version="1.0.0", meta=meta)


def test_get_returns_what_was_added():
    reg = Registry()
    cap = _cap(reg, "quantizer", "gptq")
    reg.add(cap)
    assert reg.get("quantizer", "gptq") is cap
    assert ("quantizer", "gptq") in reg and len(reg) == 1
    assert reg.of_kind("quantizer") == [cap] and reg.by_plugin("p") == [cap]


def test_unknown_name_suggests_the_closest():
    reg = Registry()
    reg.add(_cap(reg, "quantizer", "gptq"))
    reg.add(_cap(reg, "quantizer", "awq"))
    with pytest.raises(UnknownCapabilityError) as e:
        reg.get("quantizer", "gptqq")
    assert str(e.value) == "no quantizer named 'gptqq' is registered; did you mean 'gptq'? (available: awq, gptq)"


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(UnknownCapabilityError, match="did you mean 'quantizer'"):
        Registry().get("quantiser", "x")


def test_duplicate_names_both_origins():
    reg = Registry()
    reg.add(_cap(reg, "gate", "legal", plugin="a"))
    with pytest.raises(DuplicateCapabilityError) as e:
        reg.add(_cap(reg, "gate", "legal", plugin="b"))
    assert e.value.first == "plugin 'a' (mdq-a 1.0.0)" and e.value.second == "plugin 'b' (mdq-b 1.0.0)"


def test_add_all_is_all_or_nothing():
    reg = Registry()
    reg.add(_cap(reg, "gate", "legal", plugin="a"))
    batch = [_cap(reg, "gate", "budget", plugin="b"), _cap(reg, "gate", "legal", plugin="b")]
    with pytest.raises(DuplicateCapabilityError):
        reg.add_all(batch)
    assert reg.names("gate") == ["legal"]  # "budget" was not half-added


def test_add_all_catches_duplicates_within_the_batch():
    reg = Registry()
    with pytest.raises(DuplicateCapabilityError):
        reg.add_all([_cap(reg, "gate", "x"), _cap(reg, "gate", "x")])
    assert len(reg) == 0


@pytest.mark.parametrize("kind, name, meta, fragment", [
    ("nonsense", "x", {}, "unknown capability kind"),
    ("gate", "", {}, "is not valid"),
    ("gate", 3, {}, "is not valid"),
    ("operator", "L", {"params": {"t": ("a", 1)}}, "pair of numbers"),
    ("operator", "L", {"params": {"t": (0, float("inf"))}}, "finite interval"),
    ("ledger_backend", "sqlite", {"schemes": "sqlite"}, "tuple of strings"),
])
def test_bad_registrations(kind, name, meta, fragment):
    with pytest.raises(RegistrationError, match=fragment):
        _cap(Registry(), kind, name, **meta)


def test_every_kind_has_a_distinct_hook():
    assert len({k.hook for k in KINDS.values()}) == len(KINDS)
