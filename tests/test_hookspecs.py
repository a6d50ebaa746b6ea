"""Every capability kind has a documented hook stub taking only `register` (issue #2)."""

from __future__ import annotations

import inspect

import mdqcore
from mdqcore import hookspecs
from mdqcore.hookspecs import KINDS


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


def test_hook_reference_is_generated_and_in_sync():
    # docs/hooks.md is what plugin authors read: it must say exactly what the hookspecs say
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "hooks_md.py"
    r = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (script.parents[1] / "docs" / "hooks.md").read_text(encoding="utf-8")
    for kind in KINDS.values():
        assert f"## {kind.hook}" in text and kind.obj.split(" ")[0] in text


def test_every_metadata_key_is_typed_and_unknown_keys_are_refused():
    import typing

    from mdqcore.errors import RegistrationError
    from mdqcore.registry import check_meta

    for kind in KINDS.values():
        assert typing.get_type_hints(kind.meta) is not None  # every key has a type the checker understands
    import pytest
    with pytest.raises(RegistrationError, match="unknown metadata 'calibration'"):
        check_meta(KINDS["quantizer"], "gptq", {"calibration": True})
