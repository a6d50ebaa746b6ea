"""The SQLite ledger at the edges of its filesystem: full, read-only, missing (issue #15).

These tests mount a small tmpfs (they need root, as CI and the development machine have); where
mounting is not allowed they are skipped, saying why.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from mdqcore.errors import LedgerError
from mdqcore.ledger import verify
from mdqcore.ledger.sqlite import SQLiteLedger

from .test_cli import run  # noqa: F401  (fixture)
from .test_model import SEED


@pytest.fixture
def tmpfs(tmp_path):
    """A 512 KiB tmpfs, unmounted afterwards; `remount_ro()` makes it read-only."""
    where = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'}); the full-disk and read-only "
                    f"filesystem tests need it")

    class FS:
        path = where

        @staticmethod
        def remount_ro() -> None:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)

    yield FS
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_clear_error_and_loses_nothing(tmpfs):
    led = SQLiteLedger(tmpfs.path / "l.sqlite")
    payload = {"blob": "x" * 4000}
    with pytest.raises(LedgerError) as exc:
        for i in range(1000):
            led.append("received", cohort="default", actor="t", payload=payload)
    assert "the disk is full; nothing was written" in str(exc.value) and "\n" not in str(exc.value)
    head = led.head()
    led.close()
    again = SQLiteLedger(tmpfs.path / "l.sqlite", readonly=True)
    assert again.head() == head and verify(again).ok  # every entry before the failure is intact


def test_verify_and_state_show_work_on_a_read_only_filesystem(tmpfs, run, tmp_path):
    ledger = tmpfs.path / "l.sqlite"
    env = {"MDQ_LEDGER": str(ledger), "MDQ_PLUGINS": "core", "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow_skip_shadow": True}))
    assert run("policy", "set", str(policy), "--reason", "no evaluator loaded", env=env).exit_code == 0
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED, ensure_ascii=False), encoding="utf-8")
    assert run("pkg", "apply", str(seed), "--yes", env=env).exit_code == 0
    tmpfs.remount_ro()
    r = run("ledger", "verify", env=env)
    assert r.exit_code == 0 and "ledger ok" in r.output
    assert "神经氨酸酶" in run("state", "show", "--json", env=env).output
    assert run("ledger", "log", env=env).exit_code == 0
    r = run("pkg", "rollback", "mdq.idx.ifu.idf-boost", env=env)
    assert r.exit_code == 2 and "read-only" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args", [["ledger", "verify"], ["ledger", "log"], ["state", "show"], ["ledger", "replay"]])
def test_readers_on_a_mistyped_ledger_create_nothing(run, tmp_path, args):
    # issue #15: `mdq ledger verify --ledger typo.sqlite` created the file and said "0 entries, hash chain intact"
    typo = tmp_path / "typo.sqlite"
    r = run(*args, "--ledger", str(typo), env={"MDQ_PLUGINS": "core"})
    assert r.exit_code == 2 and "no ledger at" in r.output
    assert list(tmp_path.iterdir()) == []


def test_readers_never_append(run, tmp_path):
    # issue #15: `mdq state show` used to append a `base` event
    env = {"MDQ_LEDGER": str(tmp_path / "l.sqlite"), "MDQ_PLUGINS": "core"}
    SQLiteLedger(Path(env["MDQ_LEDGER"])).close()
    for args in (["state", "show"], ["ledger", "log"], ["ledger", "verify"], ["ledger", "replay"], ["policy", "show"]):
        assert run(*args, env=env).exit_code == 0, args
    assert SQLiteLedger(Path(env["MDQ_LEDGER"]), readonly=True).head() == 1  # the genesis entry only
