"""`mdq demo`, the main job: a good package promoted and a bad one rolled back, live, with no failed request."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mdqcore.ledger import verify
from mdqcore.ledger.sqlite import SQLiteLedger


def test_the_demo_promotes_the_good_package_and_rolls_back_the_bad_one(tmp_path, mdq_cli_plugins):
    from mdqcore.cli import main

    mdq_cli_plugins("core", "flexattn", "serve")
    path = tmp_path / "demo.sqlite"
    neighbours = [tmp_path / "demo.sqlite-prod.sqlite", tmp_path / "demo.sqlite.bak"]
    for n in neighbours:
        n.write_text("not the demo's")
    r = CliRunner().invoke(main, ["demo", "--ledger", str(path)])
    assert r.exit_code == 0, r.output
    assert all(n.read_text() == "not the demo's" for n in neighbours)  # only its own files are ever touched
    led = SQLiteLedger(path, readonly=True)
    closing = {e.package: e for e in led.events() if e.kind in ("promoted", "rolled_back")}
    assert closing["mdq.idx.ifu.idf-boost"].kind == "promoted" and closing["mdq.idx.ifu.idf-boost"].actor == "mdq-serve"
    bad = closing["mdq.op.flexattn.general-words"]
    assert bad.kind == "rolled_back" and "general_share" in bad.reason
    assert verify(led).ok and ", 0 failed." in r.output
    again = CliRunner().invoke(main, ["demo", "--ledger", str(path)])
    assert again.exit_code == 2 and "exists" in again.output  # never on a ledger that holds something else


@pytest.mark.slow
def test_the_demo_with_generation_serves_the_promoted_controls_on_the_next_request(tmp_path, mdq_cli_plugins):
    from mdqcore.cli import main

    mdq_cli_plugins("core", "flexattn", "serve", "generate")
    path = tmp_path / "demo.sqlite"
    r = CliRunner().invoke(main, ["demo", "--ledger", str(path), "--generate"])
    assert r.exit_code == 0, r.output
    before, after = r.output.split("promoted mdq.op.generate.window-best-of")
    assert "best_of 1, window off, 1 candidate(s)" in before
    assert "best_of 2, window on, 2 candidate(s)" in after
    led = SQLiteLedger(path, readonly=True)
    assert any(e.kind == "promoted" and e.package == "mdq.op.generate.window-best-of" for e in led.events())


def test_the_demo_without_the_generation_plugin_says_what_to_install(tmp_path, mdq_cli_plugins):
    from mdqcore.cli import main

    mdq_cli_plugins("core", "flexattn", "serve")
    r = CliRunner().invoke(main, ["demo", "--ledger", str(tmp_path / "d.sqlite"), "--generate"])
    assert r.exit_code == 2 and "pip install -e plugins/generate" in r.output
    assert not (tmp_path / "d.sqlite").exists()  # refused before any ledger is written
