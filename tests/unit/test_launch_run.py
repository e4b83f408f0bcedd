"""The launch module's run path (what the training step and every trial use) on a scripted backend: the one
wait path, attempts, SIGTERM, the deadline; and the local backend's command line and failure summary."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from components._core.backends import Backend, BackendError, load_backend
from components._core.jobs import (
    JobPhase,
    JobStatus,
    RunningJob,
    WaitPolicy,
    attempt_name,
    start_or_adopt,
    suffixed,
)
from components._core.signals import Terminated
from components.training.launch import (
    BACKENDS,
    LaunchConfig,
    LaunchError,
    LaunchSpec,
    TrainingBackend,
    make_backend,
    run,
)
from components.training.local import LocalTrainingBackend, root_cause, torchrun_command
from tests.fakes.clock import ManualClock


class ScriptedJob(RunningJob):
    """Reports the given phases one poll at a time (the last one repeats); runs ``hook(poll)`` first."""

    def __init__(self, name: str, phases: list[JobStatus], hook: Any = None, attempt: int = 1,
                 poll_s: float = 5.0, deadline_s: float = 3600) -> None:
        self.name, self.attempt, self.phases, self.hook = name, attempt, phases, hook
        self.polls, self.cancelled = 0, 0
        self._policy = WaitPolicy(poll_interval_s=poll_s, deadline_s=deadline_s)

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

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
    """Creates the scripted jobs in ``plans`` one attempt at a time; remembers what it made."""

    def __init__(self, *plans: list[JobStatus], **job: Any) -> None:
        self.plans, self.job_options, self.made = list(plans), job, []

    @classmethod
    def from_config(cls, cfg: Any, **kw: Any) -> ScriptedBackend:
        raise NotImplementedError

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        return list(self.made)

    def create(self, spec: LaunchSpec) -> RunningJob:
        job = ScriptedJob(spec.name, self.plans.pop(0), attempt=spec.attempt, **self.job_options)
        self.made.append(job)
        return job


def _spec(tmp_path: Path, **kw: Any) -> LaunchSpec:
    return LaunchSpec.parse({"name": "bc-train", "trainer_config": {"max_epochs": 2}, "data_uri": "d.parquet",
                             "output_uri": str(tmp_path), **kw})


RUNNING, OK = JobStatus(JobPhase.RUNNING), JobStatus(JobPhase.SUCCEEDED)
FAILED = JobStatus(JobPhase.FAILED, "exit code 1")


def test_success_reports_every_status_and_polls_at_the_jobs_interval(tmp_path: Path) -> None:
    seen: list[JobPhase] = []
    clock = ManualClock()
    backend = ScriptedBackend([RUNNING, RUNNING, OK], poll_s=3.0)
    launched = run(_spec(tmp_path), backend, on_status=lambda s: seen.append(s.phase), clock=clock.clock(),
                   logs_uri=str(tmp_path / "logs.txt"))
    assert seen == [JobPhase.RUNNING, JobPhase.RUNNING, JobPhase.SUCCEEDED] and clock.sleeps == [3.0, 3.0]
    assert launched.job.name == "bc-train" and backend.made[0].cancelled == 0
    assert (tmp_path / "logs.txt").read_text().startswith("== attempt 1 bc-train: Pending, created\n")


def test_failure_raises_with_the_log_tail(tmp_path: Path) -> None:
    with pytest.raises(LaunchError, match=r"bc-train \(attempt 1\) failed: exit code 1") as err:
        run(_spec(tmp_path), ScriptedBackend([RUNNING, FAILED]), clock=ManualClock().clock())
    assert "boom: rank 1 died" in str(err.value) and "line 50" not in str(err.value)


def test_retry_after_a_failure_creates_the_next_attempt_and_after_success_adopts(tmp_path: Path) -> None:
    backend = ScriptedBackend([FAILED], [RUNNING, OK])
    with pytest.raises(LaunchError):
        run(_spec(tmp_path), backend, clock=ManualClock().clock())
    second = run(_spec(tmp_path), backend, clock=ManualClock().clock())
    assert second.job.name == "bc-train-a2" and second.job.attempt == 2 and not second.adopted
    third = run(_spec(tmp_path), backend, clock=ManualClock().clock())
    assert third.adopted and third.job is second.job and len(backend.made) == 2


def test_deadline_cancels_the_job(tmp_path: Path) -> None:
    backend = ScriptedBackend([RUNNING], deadline_s=30)
    with pytest.raises(LaunchError, match="did not finish within 30s"):
        run(_spec(tmp_path), backend, clock=ManualClock().clock())
    assert backend.made[0].cancelled == 1 and backend.made[0].polls == 7


def test_sigterm_cancels_the_job_and_restores_the_handler(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def sigterm(n: int) -> None:
        if n == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    backend = ScriptedBackend([RUNNING], poll_s=0.01)
    backend.job_options["hook"] = sigterm
    with pytest.raises(Terminated, match="SIGTERM"):
        run(_spec(tmp_path), backend)
    assert backend.made[0].cancelled == 1 and signal.getsignal(signal.SIGTERM) is before


def test_keyboard_interrupt_cancels_the_job(tmp_path: Path) -> None:
    def interrupt(n: int) -> None:
        if n == 2:
            raise KeyboardInterrupt

    backend = ScriptedBackend([RUNNING], hook=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(_spec(tmp_path), backend, clock=ManualClock().clock())
    assert backend.made[0].cancelled == 1


def test_start_or_adopt_keeps_the_newest_live_attempt_and_cancels_an_older_live_one() -> None:
    older, newer = ScriptedJob("j", [RUNNING]), ScriptedJob("j-a2", [RUNNING], attempt=2)
    launched = start_or_adopt([older, newer], lambda n: pytest.fail("nothing is created"))
    assert launched.job is newer and older.cancelled == 1 and newer.cancelled == 0
    assert [a.action for a in launched.history] == ["cancelled (a second live attempt)", "adopted"]


def test_start_or_adopt_numbers_a_new_attempt_after_the_highest_seen() -> None:
    made: list[int] = []
    ended = [ScriptedJob("j", [FAILED]), ScriptedJob("j-a3", [JobStatus(JobPhase.CANCELLED)], attempt=3)]
    launched = start_or_adopt(ended, lambda n: made.append(n) or ScriptedJob(f"j-a{n}", [RUNNING], attempt=n))
    assert made == [4] and launched.history_text().splitlines() == [
        "== attempt 1 j: Failed, ended before: exit code 1", "== attempt 3 j-a3: Cancelled, ended before",
        "== attempt 4 j-a4: Pending, created"]


def test_attempt_names_keep_the_hash_within_the_limit() -> None:
    base = "train-" + "x" * 36 + "-0123456789"  # 53 characters, hash last
    assert attempt_name(base, 1, 53) == base
    second = attempt_name(base, 2, 53)
    assert len(second) == 53 and second.endswith("-0123456789-a2")
    assert attempt_name("short-abc", 3) == "short-abc-a3" and suffixed("a-b", "-t1") == "a-b-t1"
    with pytest.raises(ValueError):
        attempt_name(base, 0)


def test_backend_table_loads_classes_only_when_chosen() -> None:
    assert load_backend(BACKENDS, Backend.LOCAL, "training") is LocalTrainingBackend
    with pytest.raises(BackendError, match=r"no 'serving' implementation for backend 'vertex'.*\['local'\]"):
        load_backend({Backend.LOCAL: "components.training.local:LocalTrainingBackend"}, "vertex", "serving")
    with pytest.raises(BackendError, match="unknown backend 'mars'"):
        load_backend(BACKENDS, "mars", "training")


def test_local_backend_builds_the_torchrun_command(tmp_path: Path) -> None:
    cmd = torchrun_command(_spec(tmp_path, world_size=3), port=29511)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--nproc-per-node=3", "--master-addr=127.0.0.1", "--master-port=29511", "--max-restarts=0"} <= set(cmd)
    i = cmd.index("components.training.trainer")
    assert cmd[i - 1] == "-m" and json.loads(cmd[cmd.index("--config") + 1])["max_epochs"] == 2
    assert cmd[cmd.index("--output-uri") + 1] == str(tmp_path)


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


@pytest.mark.parametrize("launch,cls", [
    ({}, "LocalTrainingBackend"),
    ({"backend": "kubeflow", "output_root": "gs://b/r"}, "KubeflowTrainingBackend"),
    ({"backend": "vertex", "output_root": "gs://b/r", "vertex": {"project": "p", "staging_bucket": "gs://b"}},
     "VertexTrainingBackend"),
])
def test_make_backend_builds_each_backend_without_touching_a_cluster(launch: dict, cls: str) -> None:
    backend = make_backend(LaunchConfig.parse(launch), run_id="r", task="t")
    assert type(backend).__name__ == cls


def test_cluster_backends_need_shared_storage_and_vertex_its_project() -> None:
    from components._core.config import ConfigError

    with pytest.raises(ConfigError, match="output_root must be shared storage"):
        LaunchConfig.parse({"backend": "kubeflow", "output_root": "/tmp/x"})
    with pytest.raises(ConfigError, match=r"vertex .* is required"):
        LaunchConfig.parse({"backend": "vertex", "output_root": "gs://b/r"})


def test_an_error_while_waiting_cancels_a_job_that_cannot_outlive_the_step(tmp_path: Path) -> None:
    def broken(n: int) -> None:
        if n == 2:
            raise OSError("lost the process table")

    for outlives, cancelled in ((True, 0), (False, 1)):
        backend = ScriptedBackend([RUNNING], hook=broken)
        ScriptedJob.outlives_step = outlives
        try:
            with pytest.raises(OSError):
                run(_spec(tmp_path), backend, clock=ManualClock().clock())
        finally:
            del ScriptedJob.outlives_step
        assert backend.made[0].cancelled == cancelled
