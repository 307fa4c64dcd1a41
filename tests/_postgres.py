"""A throw-away PostgreSQL server for the test session, started with initdb + pg_ctl.

``postgres_server`` (session) starts it on a unix socket in a temporary directory
and stops it at the end; ``postgres_database`` (per test) returns a conninfo whose
``search_path`` is a fresh, empty schema, so tests never see each other's rows.
Without the PostgreSQL binaries the tests are skipped, except under ``CI=true``,
where a missing server is a failure. As root, the server runs as ``postgres``
(initdb refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


class PostgresServer:
    """One postgres process on a unix socket in ``root``; ``conninfo`` reaches it.

    The test suite's server runs with ``fsync=off`` (nothing it writes need outlive
    it); a ``durable`` one keeps PostgreSQL's default, every commit flushed to disk,
    as the benchmarks that compare waiting on commits need.
    """

    def __init__(self, initdb: str, pg_ctl: str, *, durable: bool = False) -> None:
        self.initdb, self.pg_ctl, self.durable = initdb, pg_ctl, durable
        self.root = Path(tempfile.mkdtemp(prefix="sp-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)
        self.conninfo = f"host={self.root} port={self.port} user=postgres dbname=postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(
            self.initdb,
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        options = (
            f"-c unix_socket_directories={self.root} -c listen_addresses='' "
            f"-p {self.port} -c max_connections=60"
        ) + ("" if self.durable else " -c fsync=off")
        log = str(self.root / "server.log")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def fresh_schema(self) -> str:
        """A conninfo whose tables land in a new, empty schema."""
        import psycopg

        schema = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.conninfo} options='-c search_path={schema}'"


def sqlalchemy_url(conninfo: str) -> str:
    """A SQLAlchemy URL (psycopg 3) for a libpq conninfo of the throw-away server."""
    import sqlalchemy
    from psycopg.conninfo import conninfo_to_dict

    parts = {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
    return sqlalchemy.engine.URL.create(
        "postgresql+psycopg",
        username=parts.pop("user", None),
        database=parts.pop("dbname", None),
        query=parts,  # host (a socket folder), port, options (a test's search_path)
    ).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _unavailable("initdb/pg_ctl not found (install PostgreSQL 15)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'salespipeline[postgres]')")
    assert initdb is not None and pg_ctl is not None
    try:
        server = PostgresServer(initdb, pg_ctl)
    except KeyError:
        _unavailable("running as root but there is no 'postgres' user to run the server")
    try:
        server.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        output = getattr(error, "stderr", b"") or b""
        shutil.rmtree(server.root, ignore_errors=True)
        _unavailable(f"the server did not start: {output.decode(errors='replace')[-500:]}")
    yield server
    server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """A conninfo for a fresh, empty schema on the session's server."""
    return postgres_server.fresh_schema()
