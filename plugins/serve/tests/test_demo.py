"""`mdq demo`, the main job: a good package promoted and a bad one rolled back, live, with no failed request."""

from __future__ import annotations

from click.testing import CliRunner

from mdqcore.ledger import verify
from mdqcore.ledger.sqlite import SQLiteLedger


def test_the_demo_promotes_the_good_package_and_rolls_back_the_bad_one(tmp_path, mdq_cli_plugins):
    from mdqcore.cli import main

    mdq_cli_plugins("core", "flexattn", "serve")
    path = tmp_path / "demo.sqlite"
    r = CliRunner().invoke(main, ["demo", "--ledger", str(path)])
    assert r.exit_code == 0, r.output
    led = SQLiteLedger(path, readonly=True)
    closing = {e.package: e for e in led.events() if e.kind in ("promoted", "rolled_back")}
    assert closing["mdq.idx.ifu.idf-boost"].kind == "promoted" and closing["mdq.idx.ifu.idf-boost"].actor == "mdq-serve"
    bad = closing["mdq.op.flexattn.general-words"]
    assert bad.kind == "rolled_back" and "general_share" in bad.reason
    assert verify(led).ok and ", 0 failed." in r.output
    again = CliRunner().invoke(main, ["demo", "--ledger", str(path)])
    assert again.exit_code == 2 and "exists" in again.output  # never on a ledger that holds something else
