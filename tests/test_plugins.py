"""Plugin discovery and loading: good, broken, duplicate and filtered plugins (issue #2)."""

from __future__ import annotations

import sys

import pytest

import mdqcore
from mdqcore.plugins import allowed_plugins, broken

from .conftest import GOOD_PLUGIN


def test_good_plugin_is_found_with_distribution_and_version(make_dist):
    make_dist("good", GOOD_PLUGIN, dist="mdq-good", version="2.3.4")
    reg = mdqcore.load_plugins(only=["good"])
    info = reg.plugins["good"]
    assert (info.status, info.distribution, info.version) == ("ok", "mdq-good", "2.3.4")
    cap = reg.get("gate", "good-gate")
    assert (cap.plugin, cap.distribution, cap.version) == ("good", "mdq-good", "2.3.4")
    assert reg.get("index_feature", "good-feature").meta["semiring"] == "max"
    assert info.as_dict()["capabilities"] == {"gate": ["good-gate"], "index_feature": ["good-feature"]}


def test_capability_may_carry_its_own_version(make_dist):
    make_dist("ops", """
        import mdqcore
        @mdqcore.hookimpl
        def register_operators(register):
            register("L", object(), version="2.1.0", params={"lambda_lex": (0, 1)})
    """, version="0.3.0")
    cap = mdqcore.load_plugins(only=["ops"]).get("operator", "L")
    assert cap.version == "2.1.0" and cap.meta["params"] == {"lambda_lex": (0.0, 1.0)}


def test_import_error_marks_plugin_broken_and_others_still_load(make_dist):
    make_dist("good", GOOD_PLUGIN)
    make_dist("explodes", "raise RuntimeError('database password missing')\n")
    reg = mdqcore.load_plugins(only=["good", "explodes"])
    assert reg.plugins["good"].status == "ok"
    bad = reg.plugins["explodes"]
    assert bad.status == "broken"
    assert "import of 'mdqtest_explodes' failed: RuntimeError: database password missing" in bad.error
    assert [p.name for p in broken(reg)] == ["explodes"]


def test_misspelt_hook_argument_is_reported(make_dist):
    make_dist("typo-arg", """
        import mdqcore
        @mdqcore.hookimpl
        def register_gates(registr):
            registr("x", object())
    """)
    info = mdqcore.load_plugins(only=["typo-arg"]).plugins["typo-arg"]
    assert info.status == "broken"
    assert "does not match its spec" in info.error and "registr" in info.error


def test_misspelt_hook_name_gets_a_suggestion(make_dist):
    make_dist("typo-hook", """
        import mdqcore
        @mdqcore.hookimpl
        def register_gate(register):
            register("x", object())
    """)
    info = mdqcore.load_plugins(only=["typo-hook"]).plugins["typo-hook"]
    assert info.status == "broken"
    assert "'register_gate' is not an mdq hook; did you mean 'register_gates'?" in info.error


def test_hook_that_raises_leaves_no_partial_registration(make_dist):
    make_dist("half", """
        import mdqcore
        @mdqcore.hookimpl
        def register_gates(register):
            register("first", object())
            raise ValueError("config file unreadable")
    """)
    reg = mdqcore.load_plugins(only=["half"])
    info = reg.plugins["half"]
    assert info.status == "broken"
    assert "raised in hook register_gates: ValueError: config file unreadable" in info.error
    assert reg.find("gate", "first") is None and len(reg) == 0


def test_duplicate_capability_names_both_plugins(make_dist):
    make_dist("alpha", GOOD_PLUGIN, dist="mdq-alpha")
    make_dist("beta", GOOD_PLUGIN, dist="mdq-beta")
    reg = mdqcore.load_plugins(only=["alpha", "beta"])
    assert reg.plugins["alpha"].status == "ok"
    err = reg.plugins["beta"].error
    assert "index_feature 'good-feature' is registered twice" in err  # kinds load in KINDS order
    assert "plugin 'alpha' (mdq-alpha 1.0.0)" in err and "plugin 'beta' (mdq-beta 1.0.0)" in err
    assert reg.get("gate", "good-gate").plugin == "alpha"


def test_a_plugin_claiming_a_core_name_is_the_broken_one(make_dist, monkeypatch):
    # issue #16: a third-party gate named "budget" used to mark core broken, taking every ledger command down
    make_dist("acme", """
        import mdqcore
        @mdqcore.hookimpl
        def register_gates(register):
            register("budget", lambda pkg, state: mdqcore.GateResult.passed())
    """)
    monkeypatch.setenv("MDQ_PLUGINS", "acme")
    reg = mdqcore.load_plugins()
    assert reg.plugins["core"].status == "ok" and reg.get("gate", "budget").plugin == "core"
    assert reg.plugins["acme"].status == "broken" and "gate 'budget' is registered twice" in reg.plugins["acme"].error
    assert reg.names("ledger_backend") == ["sqlite"]  # MDQ_PLUGINS=acme keeps the kernel's own capabilities


@pytest.mark.parametrize("target, fragment", [
    ("mdqtest_no_such_module", "No module named 'mdqtest_no_such_module'"),
    ("json:no_such_attribute", "AttributeError"),
])
def test_entry_point_pointing_nowhere(make_dist, target, fragment):
    make_dist("nowhere", None, target=target)
    info = mdqcore.load_plugins(only=["nowhere"]).plugins["nowhere"]
    assert info.status == "broken" and fragment in info.error


@pytest.mark.parametrize("source, fragment", [
    ("register('op', object())", "operator 'op' needs params="),
    ("register('op', object(), params={'x': (1, 0)})", "is not a finite interval with lo <= hi"),
    ("register('has space', object(), params={'x': (0, 1)})", "is not valid"),
    ("register('op')", "needs an object, got None"),
    ("register('op', 'not a reference', params={'x': (0, 1)})", "is not a lazy reference"),
    ("register('op', object(), params={'x': (0, 1)}, calibration=True)", "unknown metadata 'calibration'"),
    ("register('op', object(), params={'x': (0, 1)}, defaults={'x': 'high'})", "must be a finite number"),
])
def test_bad_registration_is_reported(make_dist, source, fragment):
    make_dist("badreg", f"""
        import mdqcore
        @mdqcore.hookimpl
        def register_operators(register):
            {source}
    """)
    info = mdqcore.load_plugins(only=["badreg"]).plugins["badreg"]
    assert info.status == "broken" and fragment in info.error


def test_index_feature_needs_a_semiring(make_dist):
    make_dist("nosemiring", """
        import mdqcore
        @mdqcore.hookimpl
        def register_index_features(register):
            register("idf", semiring="product")
    """)
    assert "semiring must be one of 'sum', 'max'" in mdqcore.load_plugins(only=["nosemiring"]).plugins["nosemiring"].error


def test_mdq_plugins_env_selects(make_dist, monkeypatch):
    make_dist("good", GOOD_PLUGIN)
    monkeypatch.setenv("MDQ_PLUGINS", "")
    assert allowed_plugins() == {"core"}  # the kernel's own plugin is implied ...
    monkeypatch.setenv("MDQ_PLUGINS", "-core")
    assert allowed_plugins() == set() and mdqcore.load_plugins().plugins == {}  # ... unless excluded
    monkeypatch.setenv("MDQ_PLUGINS", " good , ")
    assert set(mdqcore.load_plugins().plugins) == {"core", "good"}
    monkeypatch.setenv("MDQ_PLUGINS", "good,missing")
    reg = mdqcore.load_plugins()
    assert reg.plugins["missing"].status == "broken"
    assert "no installed distribution has an entry point 'missing'" in reg.plugins["missing"].error
    monkeypatch.delenv("MDQ_PLUGINS")
    assert allowed_plugins() is None


def test_extra_objects_load_without_entry_points():
    class Plugin:
        @mdqcore.hookimpl
        def register_evaluators(self, register):
            register("coverage", lambda state, inputs: {"coverage": 1.0})

    reg = mdqcore.load_plugins(extra=[("inline", Plugin())], entry_points=False)
    assert reg.names("evaluator") == ["coverage"]
    assert reg.get("evaluator", "coverage").distribution is None


def test_lazy_reference_imports_on_first_use_and_names_the_culprit(make_dist):
    make_dist("lazy", """
        import mdqcore
        @mdqcore.hookimpl
        def register_gates(register):
            register("fine", "json:dumps")
            register("dangling", "mdqtest_nowhere.gates:check")
    """)
    reg = mdqcore.load_plugins(only=["lazy"])
    assert reg.plugins["lazy"].status == "ok"  # nothing is imported while registering
    import json
    assert reg.get("gate", "fine").obj is json.dumps
    with pytest.raises(mdqcore.LazyReferenceError) as exc:
        reg.get("gate", "dangling").obj
    msg = str(exc.value)
    assert "plugin 'lazy'" in msg and "gate 'dangling'" in msg and "'mdqtest_nowhere.gates:check'" in msg
    from mdqcore.plugins import check_references
    assert [e.name for e in check_references(reg)] == ["dangling"]


def test_first_party_plugins_register_without_heavy_imports():
    # issue #18: `mdq --help` took 3.7 s because a plugin imported torch while registering
    import subprocess
    import sys

    code = ("import sys, mdqcore; reg = mdqcore.load_plugins(); "
            "bad = [p.name for p in reg.plugins.values() if p.status != 'ok']; "
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'numpy', 'sklearn', "
            "'matplotlib', 'scipy', 'psycopg', 'triton', 'safetensors'}); print(bad, heavy, len(reg.plugins))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("] ")
    assert out[0] == "[" and out[1] == "[" and int(out[2]) >= 8, out


def test_entry_points_are_read_as_importlib_metadata_reads_them(tmp_path, monkeypatch):
    # the kernel reads entry points without importlib.metadata (start-up time); it must find the same ones
    from importlib import metadata

    from mdqcore.plugins import entry_points

    def dist(site, folder, name, version, eps, meta="METADATA"):
        d = site / folder
        d.mkdir(parents=True)
        (d / meta).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nlong text: here\n")
        if eps is not None:
            (d / "entry_points.txt").write_text(eps)

    a, b = tmp_path / "a", tmp_path / "b"
    dist(a, "acme_gates-1.2.0.dist-info", "acme-gates", "1.2.0",
         "[console_scripts]\nacme = acme:main\n\n[mdq.plugins]\nacme = acme_gates.plugin\n# a comment\nextra = x.y:obj.attr [opt]\n")
    dist(a, "other-0.1.dist-info", "other", "0.1", "[console_scripts]\nother = other:main\n")
    dist(a, "plain-2.0.dist-info", "plain", "2.0", None)
    dist(a, "legacy_pkg.egg-info", "legacy-pkg", "0.3", "[mdq.plugins]\nlegacy = legacy.plugin\n", meta="PKG-INFO")
    dist(b, "acme_gates-9.9.9.dist-info", "acme-gates", "9.9.9", "[mdq.plugins]\nacme = shadowed.plugin\n")
    monkeypatch.setattr(sys, "path", [str(a), str(b), str(tmp_path / "missing")])
    ours = sorted(entry_points("mdq.plugins"))
    theirs = sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version)
                    for e in metadata.entry_points(group="mdq.plugins"))
    assert ours == theirs
    assert ("acme", "acme_gates.plugin", "acme-gates", "1.2.0") in ours  # the first on sys.path wins
    assert {n for n, *_ in ours} == {"acme", "extra", "legacy"}
