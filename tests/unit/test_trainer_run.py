"""run_training against a scripted backend, and the local backend's command line and failure summary."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from components._core.artifacts import write_json
from components._core.backends import Backend, resolve
from components._core.waiting import ManualClock
from components.training.launch import (
    JobPhase,
    JobStatus,
    LaunchError,
    LaunchSpec,
    RunningJob,
    TrainingBackend,
)
from components.training.local import LocalTrainingBackend, root_cause, torchrun_command
from components.training.run import Terminated, run_training


class ScriptedJob(RunningJob):
    """Reports the given phases one poll at a time; runs ``on_poll`` hooks."""

    def __init__(self, phases: list[JobStatus], hook: Any = None) -> None:
        self.name, self.phases, self.hook, self.polls, self.cancelled = "job", phases, hook, 0, 0

    def status(self) -> JobStatus:
        self.polls += 1
        if self.hook:
            self.hook(self.polls)
        if self.cancelled:
            return JobStatus(JobPhase.CANCELLED)
        return self.phases[min(self.polls, len(self.phases)) - 1]

    def cancel(self) -> None:
        self.cancelled += 1

    def logs(self) -> str:
        return "\n".join(f"line {i}" for i in range(100)) + "\nboom: rank 1 died\n"


class ScriptedBackend(TrainingBackend):
    def __init__(self, job: ScriptedJob) -> None:
        self.job, self.started = job, 0

    def start(self, spec: LaunchSpec) -> RunningJob:
        self.started += 1
        return self.job




def _spec(tmp_path: Path, **kw: Any) -> LaunchSpec:
    return LaunchSpec.parse({"name": "bc-train", "trainer_config": {"max_epochs": 2}, "data_uri": "d.parquet",
                             "output_uri": str(tmp_path), **kw})


RUNNING, OK = JobStatus(JobPhase.RUNNING), JobStatus(JobPhase.SUCCEEDED)


def test_success_returns_final_metrics_and_reports_status(tmp_path: Path) -> None:
    write_json({"test_auc": 0.97}, str(tmp_path / "final_metrics.json"))
    seen: list[JobPhase] = []
    job = ScriptedJob([RUNNING, RUNNING, OK])
    out = run_training(_spec(tmp_path), ScriptedBackend(job), on_status=lambda s: seen.append(s.phase),
                       clock=ManualClock().clock())
    assert out == {"test_auc": 0.97} and seen == [JobPhase.RUNNING, JobPhase.RUNNING, JobPhase.SUCCEEDED]
    assert job.cancelled == 0


def test_failure_raises_with_the_log_tail(tmp_path: Path) -> None:
    job = ScriptedJob([RUNNING, JobStatus(JobPhase.FAILED, "exit code 1")])
    with pytest.raises(LaunchError, match=r"bc-train failed: exit code 1") as err:
        run_training(_spec(tmp_path), ScriptedBackend(job), clock=ManualClock().clock())
    assert "boom: rank 1 died" in str(err.value) and "line 50" not in str(err.value)


def test_deadline_cancels_the_job(tmp_path: Path) -> None:
    job = ScriptedJob([RUNNING])
    with pytest.raises(LaunchError, match="deadline"):
        run_training(_spec(tmp_path, timeout_s=30), ScriptedBackend(job), interval_s=5, clock=ManualClock().clock())
    assert job.cancelled == 1 and job.polls >= 6


def test_sigterm_cancels_the_job_and_restores_the_handler(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    def sigterm(n: int) -> None:
        if n == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    job = ScriptedJob([RUNNING], hook=sigterm)
    with pytest.raises(Terminated, match="SIGTERM"):
        run_training(_spec(tmp_path), ScriptedBackend(job), interval_s=0.01)
    assert job.cancelled == 1 and signal.getsignal(signal.SIGTERM) is before


def test_keyboard_interrupt_cancels_the_job(tmp_path: Path) -> None:
    def interrupt(n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    job = ScriptedJob([RUNNING], hook=interrupt)
    with pytest.raises(Terminated, match="interrupted"):
        run_training(_spec(tmp_path), ScriptedBackend(job), clock=ManualClock().clock())
    assert job.cancelled == 1


def test_local_backend_is_registered_and_builds_the_torchrun_command(tmp_path: Path) -> None:
    assert resolve("training", Backend.LOCAL) is LocalTrainingBackend
    cmd = torchrun_command(_spec(tmp_path, world_size=3), port=29511)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--nproc-per-node=3", "--master-addr=127.0.0.1", "--master-port=29511", "--max-restarts=0"} <= set(cmd)
    i = cmd.index("components.training.trainer")
    assert cmd[i - 1] == "-m" and json.loads(cmd[cmd.index("--config") + 1])["max_epochs"] == 2
    assert cmd[cmd.index("--output-uri") + 1] == str(tmp_path)
    with pytest.raises(ValueError, match="dropout"):
        torchrun_command(_spec(tmp_path, trainer_config={"dropout": 3}), port=1)


def test_root_cause_is_read_from_the_torchrun_summary() -> None:
    summary = """Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 10124)  (SIGTERM)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-23_04:35:31
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 10125)  (SIGKILL)
  error_file: <N/A>"""
    assert root_cause(summary) == "rank 1 failed with exit code -9 (SIGKILL)"
    crashed = summary.replace("  (SIGKILL)", "").replace("-9", "1") + "\n  traceback : Traceback (most recent)\n" \
        "    raise ValueError('x: y')\n  ValueError: x: y\n"
    assert root_cause(crashed) == "rank 1 failed with exit code 1: ValueError: x: y"
    assert root_cause("no summary here") == ""
