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
from typing import ClassVar, Self

import components
from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy
from components._core.waiting import Clock
from components.training.launch import LaunchConfig, LaunchSpec, LocalOptions, TrainingBackend

TAIL_LINES = 40  # in the failure message
KEPT_LINES = 400  # searched for torchrun's root-cause summary
_REPO_ROOT = str(Path(components.__file__).resolve().parent.parent)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(spec: LaunchSpec, port: int, python: str = sys.executable) -> list[str]:
    """The ``torch.distributed.run`` command line for ``spec`` (the trainer's arguments from the launch module)."""
    return [python, "-m", "torch.distributed.run", f"--nproc-per-node={spec.world_size}", "--nnodes=1",
            "--max-restarts=0", "--master-addr=127.0.0.1", f"--master-port={port}", *spec.trainer_args()]


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
    """A ``torch.distributed.run`` process group started by ``LocalTrainingBackend``; known only to the process
    that started it, so it does not outlive the step."""

    outlives_step = False

    def __init__(self, spec: LaunchSpec, proc: subprocess.Popen[bytes], log_path: Path, options: LocalOptions
                 ) -> None:
        name = spec.name
        self.name, self.attempt, self.proc, self.log_path = name, spec.attempt, proc, log_path
        self.grace_s, stream = options.grace_s, options.stream_logs
        self._policy = options.wait.policy(spec.timeout_s)
        self._tail: deque[str] = deque(maxlen=KEPT_LINES)
        self._cancelled = False
        self._reader = threading.Thread(target=self._pump, args=(stream,), name=f"logs-{name}", daemon=True)
        self._reader.start()

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

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


class LocalTrainingBackend(TrainingBackend):
    """Runs ``spec.world_size`` ranks on this machine. Jobs started in this process are remembered by step, so
    a step run again in the same process adopts its running job."""

    _jobs: ClassVar[dict[str, list[LocalJob]]] = {}

    def __init__(self, log_dir: str | None = None, options: LocalOptions | None = None,
                 python: str = sys.executable) -> None:
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="training-logs-"))
        self.options, self.python = options or LocalOptions(), python

    @classmethod
    def from_config(cls, cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                    clock: Clock | None = None) -> Self:
        return cls(log_dir=log_dir, options=cfg.local)

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        return list(self._jobs.get(spec.step_name, []))

    def create(self, spec: LaunchSpec) -> LocalJob:
        cmd = torchrun_command(spec, free_port(), self.python)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (_REPO_ROOT, os.environ.get("PYTHONPATH")) if p)}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        job = LocalJob(spec, proc, self.log_dir / f"{spec.name}.log", self.options)
        self._jobs.setdefault(spec.step_name, []).append(job)
        return job
