"""A real PostgreSQL server for the live store's tests, started with initdb and pg_ctl.

The server listens on a Unix socket only (``-h ''``), in a folder of its own, so the tests
need no TCP port (the unit run disables sockets but allows Unix ones). ``initdb`` refuses to run
as root, so as root the server runs as the ``postgres`` user. Where the binaries are absent
the fixture skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))
PORT = 5433


def _binaries() -> Path | None:
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        pytest.skip("running as root and runuser is missing: initdb refuses root")
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL server's ``postgres`` database (stopped at the end)."""
    pytest.importorskip("psycopg", reason="the postgres extra: pip install 'hybrid-llm[postgres]'")
    binaries = _binaries()
    if binaries is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found")
    folder = Path(tempfile.mkdtemp(prefix="hybrid-llm-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    os.chmod(folder, 0o700)
    data = folder / "data"
    try:
        subprocess.run(
            _as_server_user(
                [str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_server_user(
                [
                    str(binaries / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    f"-k {folder} -h '' -p {PORT}",
                    "-l",
                    str(folder / "server.log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port={PORT}"
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A URL of the server whose live tables are dropped before the test."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        for table in ("live_meta", "shadow_rows", "traffic", "router_versions", "live_locks"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    yield postgres_url
