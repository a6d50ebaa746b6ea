"""Every capability kind has a documented hook stub taking only `register` (issue #2)."""

from __future__ import annotations

import inspect

import mdqcore
from mdqcore import hookspecs
from mdqcore.registry import KINDS


def test_each_kind_has_a_documented_spec_with_register():
    for kind in KINDS.values():
        stub = getattr(hookspecs, kind.hook)
        assert list(inspect.signature(stub).parameters) == ["register"], kind.hook
        assert stub.__doc__ and "register(" in stub.__doc__, f"{kind.hook} lacks a usage docstring"


def test_hook_names_match_kinds():
    assert set(hookspecs.hook_names()) == {k.hook for k in KINDS.values()}


def test_hookimpl_is_reexported_for_plugin_authors():
    assert mdqcore.hookimpl is hookspecs.hookimpl
    assert hookspecs.PROJECT == "mdq"
