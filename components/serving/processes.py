"""The one launcher of local model-server processes (``python -m components.serving.server``), for the local
canary, ``catalog serve``, tests and benchmarks.

    with start_model_server(model_uri, name="bc") as server:
        server.wait_ready(60)            # polls /v2/models/bc/ready; raises with the log tail if it died
        httpx.post(f"{server.url}/v1/models/bc:predict", json={"instances": [...]})

``stop()`` sends SIGTERM, then SIGKILL after a grace period. A server started with ``die_with_parent=True`` (the
default) also stops by itself when the process that started it is gone, and at that process's exit; pass
False for a server that must outlive its starter (``catalog serve``), and stop it by its pid later
(``stop_pid``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

import components

LOOPBACK = "127.0.0.1"
SERVER_MODULE = "components.serving.server"
PARENT_ENV = "CATALOG_SERVER_PARENT_PID"  # the server stops when its parent is no longer this pid
_LIVE: weakref.WeakSet[ModelServerProcess] = weakref.WeakSet()


class ModelServerError(RuntimeError):
    """A model server process exited before it was ready (the message ends with its log tail)."""


def free_port() -> int:
    """A TCP port free on every interface right now (KServe binds 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, chars: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - chars))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


class ModelServerProcess:
    """A running model server: its process, URL, model name and log file."""

    def __init__(self, proc: subprocess.Popen[bytes], *, name: str, port: int, log_path: Path,
                 version: str | None = None, model_uri: str = "") -> None:
        self.proc = proc
        self.name = name
        self.port = port
        self.url = f"http://{LOOPBACK}:{port}"
        self.log_path = log_path
        self.version = version
        self.model_uri = model_uri

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        return _tail(self.log_path, chars)

    def wait_ready(self, timeout_s: float = 60.0, poll_s: float = 0.05) -> list[int]:
        """Poll ``/v2/models/{name}/ready`` until it answers 200; return the statuses seen in order (0 = no
        answer yet), e.g. ``[0, 503, 200]``. Raises ``ModelServerError`` if the process exits first and
        ``TimeoutError`` after ``timeout_s``, both with the log tail."""
        ready_url = f"{self.url}/v2/models/{self.name}/ready"
        seen: list[int] = []
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                if not self.alive():
                    raise ModelServerError(f"model server {self.name!r} (pid {self.pid}) exited with status "
                                           f"{self.returncode} before it was ready; log {self.log_path}:\n"
                                           f"{self.log_tail()}")
                try:
                    status = client.get(ready_url).status_code
                except httpx.TransportError:
                    status = 0
                if not seen or seen[-1] != status:
                    seen.append(status)
                if status == 200:
                    return seen
                if time.monotonic() > deadline:
                    raise TimeoutError(f"model server {self.name!r} (pid {self.pid}) not ready after {timeout_s}s "
                                       f"(statuses seen {seen}); log {self.log_path}:\n{self.log_tail()}")
                time.sleep(poll_s)

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL (to its whole process group) after ``grace_s``; returns the exit status."""
        _LIVE.discard(self)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def launch(module_args: list[str], *, name: str, port: int, log_path: str | Path | None = None,
           version: str | None = None, model_uri: str = "", die_with_parent: bool = True) -> ModelServerProcess:
    """Start ``python -m <module_args...>`` as a model server in its own session, output to ``log_path``
    (default: a new temporary file). The building block of ``start_model_server`` (and of benchmarks that
    serve another ``kserve.Model`` the same way)."""
    if log_path is None:
        fd, tmp = tempfile.mkstemp(prefix=f"model-server-{name}-", suffix=".log")
        os.close(fd)
        log_path = tmp
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    root = str(Path(components.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    if die_with_parent:
        env[PARENT_ENV] = str(os.getpid())
    else:
        env.pop(PARENT_ENV, None)
    with path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", *module_args], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = ModelServerProcess(proc, name=name, port=port, log_path=path, version=version, model_uri=model_uri)
    if die_with_parent:
        _LIVE.add(server)
    return server


def start_model_server(model_uri: str, *, name: str, port: int | None = None, version: str | None = None,
                       log_path: str | Path | None = None, die_with_parent: bool = True) -> ModelServerProcess:
    """Serve the model folder at ``model_uri`` as ``name`` on ``port`` (default: a free port) in a new
    process; returns at once (call ``wait_ready``). ``version`` overrides the model's digest-derived version."""
    port = port or free_port()
    args = [SERVER_MODULE, "--model-uri", model_uri, "--name", name, "--http-port", str(port)]
    if version:
        args += ["--model-version", version]
    return launch(args, name=name, port=port, log_path=log_path, version=version, model_uri=model_uri,
                  die_with_parent=die_with_parent)


def stop_pid(pid: int, grace_s: float = 10.0) -> bool:
    """Stop a model server started earlier, possibly by another process (SIGTERM, SIGKILL after ``grace_s``);
    False when no such process was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def watch_parent() -> None:
    """In a server started with ``die_with_parent``: SIGTERM this process once its starter is gone."""
    expected = os.environ.get(PARENT_ENV)
    if not expected:
        return

    def watch() -> None:
        while os.getppid() == int(expected):
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop(grace_s=5.0)
