"""A throwaway PostgreSQL cluster for the tests (Debian's `postgresql` package), on 127.0.0.1 and a private socket.

As a script it runs one command against a fresh database and removes everything afterwards, even on Ctrl-C:
    python3 tests/pg_cluster.py make test
The command sees MEDUI_TEST_DATABASE_URL (tests/conftest.py then runs every test on PostgreSQL). Only the standard
library is used, so it runs before the virtual environment exists. tests/test_postgres.py uses `cluster()` too.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DATABASE = "medui_test"
# A server zone other than UTC, as a hospital's server often has, so a naive/aware datetime mix-up shows in tests.
TIMEZONE = "America/New_York"


def _bin(tool: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return found[-1] if found else shutil.which(tool)


def available() -> bool:
    """Whether the server binaries are installed."""
    return bool(_bin("initdb") and _bin("pg_ctl"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster (trust auth, user `medui`, no fsync) and yield its server URL without a database name
    ("postgresql+psycopg://medui@127.0.0.1:PORT"); stop and delete it on exit. Root runs the server as `postgres`,
    which PostgreSQL requires."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="medui-pg-"))
    os.chmod(folder, 0o777)
    data, port = folder / "data", _free_port()
    try:
        subprocess.run([*as_postgres, initdb, "-D", str(data), "-U", "medui", "--auth=trust", "-E", "UTF8",
                        "--no-sync"], check=True, capture_output=True)
        options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c timezone={TIMEZONE}")
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o", options,
                        "start"], check=True, capture_output=True)
        yield f"postgresql+psycopg://medui@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def create_database(server: str, name: str, template: str = "template1") -> str:
    """CREATE DATABASE through psql (no driver needed); returns the database's URL."""
    _psql(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return f"{server}/{name}"


def drop_database(server: str, name: str) -> None:
    _psql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _psql(server: str, sql: str) -> None:
    host_port = server.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    subprocess.run([_bin("psql") or "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port,
                    "-U", "medui", "-d", "postgres", "-c", sql], check=True, capture_output=True)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: pg_cluster.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    # SIGTERM (a CI runner cancelling the job) unwinds like Ctrl-C, so the cluster is stopped and deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with cluster() as server:
        url = create_database(server, DATABASE)
        print(f"PostgreSQL test database: {url}", flush=True)
        try:
            return subprocess.run(argv, env={**os.environ, "MEDUI_TEST_DATABASE_URL": url}).returncode
        finally:
            drop_database(server, DATABASE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
