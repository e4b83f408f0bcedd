"""Local training backend: the trainer under ``torch.distributed.run`` with N processes (gloo) on this
machine, in its own process group, logs streamed and kept in a file."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import deque
from pathlib import Path

import components
from components._core.backends import Backend, register
from components.training.config import TrainerConfig
from components.training.launch import JobPhase, JobStatus, LaunchSpec, RunningJob, TrainingBackend

TAIL_LINES = 40  # in the failure message
KEPT_LINES = 400  # searched for torchrun's root-cause summary
_REPO_ROOT = str(Path(components.__file__).resolve().parent.parent)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(spec: LaunchSpec, port: int, python: str = sys.executable) -> list[str]:
    """The ``torch.distributed.run`` command line for ``spec`` (config validated first)."""
    cfg = TrainerConfig.parse(spec.trainer_config)
    return [python, "-m", "torch.distributed.run", f"--nproc-per-node={spec.world_size}", "--nnodes=1",
            "--max-restarts=0", "--master-addr=127.0.0.1", f"--master-port={port}",
            "-m", "components.training.trainer", "--config", cfg.to_json(),
            "--data-uri", spec.data_uri, "--output-uri", spec.output_uri]


def root_cause(log_tail: str) -> str:
    """``rank R failed with exit code C (SIGNAL): Error: ...`` from torchrun's "Root Cause" summary, or ""."""
    _, found, block = log_tail.rpartition("Root Cause")
    rank = re.search(r"rank\s*:\s*(\d+)", block) if found else None
    code = re.search(r"exitcode\s*:\s*(-?\d+)[^\n]*?(\(SIG\w+\))?\s*$", block, re.M) if found else None
    if not (rank and code):
        return ""
    errors = re.findall(r"^\s*([\w.]*(?:Error|Exception|Interrupt)\w*: .+)$", block, re.M)
    signame = f" {code.group(2)}" if code.group(2) else ""
    return f"rank {rank.group(1)} failed with exit code {code.group(1)}{signame}" + (
        f": {errors[-1].strip()}" if errors else "")


def _signal_text(code: int) -> str:
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


class LocalJob(RunningJob):
    """A ``torch.distributed.run`` process group started by ``LocalTrainingBackend``."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log_path: Path, stream: bool,
                 grace_s: float) -> None:
        self.name, self.proc, self.log_path, self.grace_s = name, proc, log_path, grace_s
        self._tail: deque[str] = deque(maxlen=KEPT_LINES)
        self._cancelled = False
        self._reader = threading.Thread(target=self._pump, args=(stream,), name=f"logs-{name}", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """Process id of ``torch.distributed.run``, also its process-group id."""
        return self.proc.pid

    def _pump(self, stream: bool) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace")
                log.write(line)
                log.flush()
                self._tail.append(line.rstrip("\n"))
                if stream:
                    sys.stdout.write(f"[{self.name}] {line}")
                    sys.stdout.flush()

    def status(self) -> JobStatus:
        code = self.proc.poll()
        if code is None:
            return JobStatus(JobPhase.RUNNING, details={"pid": self.pid})
        self._reader.join(timeout=5)
        details = {"returncode": code, "log_path": str(self.log_path)}
        if self._cancelled:
            return JobStatus(JobPhase.CANCELLED, "cancelled", details)
        if code == 0:
            return JobStatus(JobPhase.SUCCEEDED, "", details)
        why = _signal_text(code) if code < 0 else f"exit code {code}"
        cause = root_cause("\n".join(self._tail))
        tail = "\n".join(list(self._tail)[-TAIL_LINES:])
        details["root_cause"] = cause
        return JobStatus(JobPhase.FAILED, f"torch.distributed.run {why}{'; ' + cause if cause else ''}; "
                         f"last log lines:\n{tail}", details)

    def cancel(self) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after ``grace_s``."""
        if self.proc.poll() is not None:
            return
        self._cancelled = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=self.grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self._kill_stragglers()
        self.proc.wait()

    def _kill_stragglers(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers torchrun left behind
            os.killpg(self.proc.pid, signal.SIGKILL)

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@register("training", Backend.LOCAL)
class LocalTrainingBackend(TrainingBackend):
    """Runs ``spec.world_size`` ranks on this machine; a running job of the same name is adopted.

    ``stream`` copies every log line to stdout as it arrives; ``grace_s`` is the SIGTERM-to-SIGKILL delay."""

    _jobs: dict[str, LocalJob] = {}

    def __init__(self, log_dir: str | None = None, stream: bool = True, grace_s: float = 10.0,
                 python: str = sys.executable) -> None:
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="training-logs-"))
        self.stream, self.grace_s, self.python = stream, grace_s, python

    def job(self, name: str) -> LocalJob | None:
        """The latest job started under ``name`` in this process, if any."""
        return self._jobs.get(name)

    def start(self, spec: LaunchSpec) -> LocalJob:
        running = self._jobs.get(spec.name)
        if running is not None and running.proc.poll() is None:
            return running
        cmd = torchrun_command(spec, free_port(), self.python)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        job = LocalJob(spec.name, proc, self.log_dir / f"{spec.name}.log", self.stream, self.grace_s)
        self._jobs[spec.name] = job
        return job
