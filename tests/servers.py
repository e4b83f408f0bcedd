"""Real Redis and PostgreSQL servers for tests: started on a free loopback port in a temporary folder, with a
password, and stopped (process and folder) afterwards. Use them as context managers or through the fixtures in
``tests/integration/conftest.py``.

Binaries: ``redis-server`` on PATH (Debian package ``redis-server``); PostgreSQL from ``$PG_BIN``, else
``/usr/lib/postgresql/*/bin`` (Debian package ``postgresql``), else PATH. PostgreSQL refuses to run as root, so
when the tests run as root the server runs as the ``postgres`` (or ``nobody``) user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOOPBACK = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The server's binaries are not installed."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"server not listening on {LOOPBACK}:{port} after {timeout}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class RedisServer:
    """``redis-server`` without persistence on loopback, password required."""

    password: str = "redis-test-pw"
    port: int = 0
    dir: Path = field(default_factory=Path)
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``host:port`` as Feast's connection string wants it."""
        return f"{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 20) -> Self:
        """Start the server and wait until it accepts connections."""
        binary = shutil.which("redis-server")
        if not binary:
            raise ServerUnavailable("redis-server is not installed (apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.port = free_port()
        log = self.dir / "redis.log"
        args = [binary, "--bind", LOOPBACK, "--port", str(self.port), "--dir", str(self.dir), "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", "--logfile", str(log)]
        if self.password:
            args += ["--requirepass", self.password]
        log.touch()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            _wait_port(self.port, self.proc, log, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self) -> Any:
        """A redis-py client for assertions."""
        import redis

        return redis.Redis(host=LOOPBACK, port=self.port, password=self.password or None)

    def flush(self) -> None:
        """Remove every key (between tests)."""
        self.client().flushall()

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()


def pg_bin() -> Path:
    """Folder holding ``initdb`` and ``postgres``."""
    candidates = [os.environ.get("PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for c in candidates:
        if c and (Path(c) / "initdb").is_file():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerUnavailable("PostgreSQL binaries not found (apt-get install postgresql, or set PG_BIN)")


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster on loopback: password (scram) over TCP, no SSL."""

    user: str = "catalog"
    password: str = "pg-test-pw"
    database: str = "catalog"
    port: int = 0
    dir: Path = field(default_factory=Path)
    proc: subprocess.Popen | None = None
    _run_as: str | None = None

    def url(self, database: str | None = None, with_password: bool = False) -> str:
        """``postgresql://user[:password]@127.0.0.1:port/db``."""
        auth = f"{self.user}:{self.password}" if with_password else self.user
        return f"postgresql://{auth}@{LOOPBACK}:{self.port}/{database or self.database}"

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *args] if self._run_as else args

    def start(self, timeout: float = 60) -> Self:
        """initdb, start, create the database; wait until it accepts connections."""
        bindir = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        data, log, pwfile = self.dir / "data", self.dir / "postgres.log", self.dir / "pw"
        pwfile.write_text(self.password + "\n")
        log.touch()
        if os.geteuid() == 0:
            self._run_as = next(u for u in ("postgres", "nobody") if _user_exists(u))
            entry = pwd.getpwnam(self._run_as)
            for p in (self.dir, pwfile, log):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        self.port = free_port()
        try:
            self._boot(bindir, data, log, pwfile, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _boot(self, bindir: Path, data: Path, log: Path, pwfile: Path, timeout: float) -> None:
        init = [str(bindir / "initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
        subprocess.run(self._cmd(init), check=True, capture_output=True, timeout=120)
        args = [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-c", f"listen_addresses={LOOPBACK}",
                "-c", f"unix_socket_directories={self.dir}", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "ssl=off", "-c", "max_connections=200"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(self._cmd(args), stdout=out, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.proc, log, timeout)
        self._create_database(timeout)

    def _create_database(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres", with_password=True), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def reset(self) -> None:
        """Drop and recreate the database (between tests)."""
        import psycopg

        with psycopg.connect(self.url("postgres", with_password=True), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self) -> None:
        """Fast shutdown with ``pg_ctl stop -m fast`` (runuser does not forward signals), then delete the folder."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(self._cmd([str(pg_bin() / "pg_ctl"), "stop", "-D", str(self.dir / "data"), "-m",
                                          "fast", "-w", "-t", "20"]), capture_output=True, timeout=30)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                _stop(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object | TracebackType | None) -> None:
        self.stop()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
