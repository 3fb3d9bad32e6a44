"""Real servers for the scale-out tests, started on 127.0.0.1 and stopped after: PostgreSQL, Redis, moto's S3.

A missing server is installed (Debian packages through apt-get, Python parts from the registry through pip)
rather than skipped: the tests are about running on these engines, so without them they must fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_APT_UPDATED = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def apt_install(*packages: str) -> None:
    """Install Debian packages (we run as root in CI and on the developers' machines)."""
    global _APT_UPDATED
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env, timeout=600)
        _APT_UPDATED = True
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        capture_output=True,
        env=env,
        timeout=900,
    )


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str = "postgres"

    def url(self, db: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg2)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{db}"

    def libpq(self, db: str = "postgres") -> str:
        """libpq connection string, as DuckDB's postgres extension and DuckLake take it."""
        return f"dbname={db} host={self.host} port={self.port} user={self.user}"

    def create_database(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return name


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster (trust auth, fsync off) as the `postgres` system user when root."""
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
        apt_install("postgresql")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    assert initdb and pg_ctl, "PostgreSQL server binaries (initdb, pg_ctl) missing after apt-get install"
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="mp-pg-")
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), free_port()
    subprocess.run(
        [*prefix, initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*prefix, pg_ctl, "-D", data, "-o", options, "-w", "-t", "60", "-l", f"{root}/log", "start"],
        check=True,
        capture_output=True,
        timeout=90,
    )
    try:
        yield Postgres("127.0.0.1", port)
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """Debian's redis-server on a free port, no persistence; yields the broker URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        apt_install("redis-server")
        binary = shutil.which("redis-server")
    assert binary, "redis-server missing after apt-get install"
    port = free_port()
    root = tempfile.mkdtemp(prefix="mp-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            root,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's standalone server, an emulator of the S3 API (not AWS), on a free port; yields its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
