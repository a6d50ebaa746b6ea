"""Start a throw-away local PostgreSQL cluster on 127.0.0.1 (tests, benchmarks, trying replicas out)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

from mdqcore.errors import LedgerError


class LocalCluster:
    """A PostgreSQL cluster in a temporary directory, trust auth on loopback; `stop()` removes it."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or ([shutil.which("pg_ctl")] if shutil.which("pg_ctl") else [])
        if not found:
            raise LedgerError("PostgreSQL server binaries not found: apt-get install -y postgresql")
        self.bin = Path(found[-1]).parent
        self.base = Path(f"/tmp/mdq-pg-{uuid.uuid4().hex[:8]}")
        self.base.mkdir()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as the packaged postgres account
            if shutil.which("runuser") is None:
                raise LedgerError("running as root without runuser: cannot start PostgreSQL as another user")
            shutil.chown(self.base, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data = self.base / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self._run("pg_ctl", "-D", str(self.data), "-o", f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1",
                  "-l", str(self.base / "log"), "-w", "start")

    def _run(self, tool: str, *args: str) -> None:
        r = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise LedgerError(f"{tool} failed: {r.stderr.strip()[-500:]}")

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def fresh_url(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def pause(self) -> None:
        """Stop the server but keep its data (tests: the ledger becomes unreachable)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start a paused server again on the same port."""
        self._run("pg_ctl", "-D", str(self.data), "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1", "-l", str(self.base / "log"),
                  "-w", "start")

    def stop(self) -> None:
        """Stop the server and delete its files."""
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
