"""A simulated training backend: jobs that "train" by writing a synthetic learning curve, one epoch per poll.

It honours the launch contract (``metrics.jsonl`` one line per epoch with ``epoch`` and the metric, then
``final_metrics.json``) without torch or processes, so tuning runs are cheap and exactly reproducible: a job
advances ``epochs_per_poll`` epochs each time its status is read, so completion order depends only on the
curves' lengths and the poll order, never on wall time. A test helper (also used by the tuning benchmark).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from components._core.artifacts import is_local, local_path
from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy
from components._core.waiting import Clock
from components.training.launch import (
    FINAL_METRICS_FILE,
    METRICS_FILE,
    LaunchConfig,
    LaunchSpec,
    TrainingBackend,
)

Curve = Sequence[float]
Objective = Callable[[dict[str, Any]], Curve]


class SimulatedFailure(RuntimeError):
    """Raised by an objective: the job fails after writing ``epochs`` epochs of ``curve``."""

    def __init__(self, message: str, curve: Curve = (), epochs: int = 0) -> None:
        super().__init__(message)
        self.curve = list(curve)
        self.epochs = epochs


class SimulatedJob(RunningJob):
    """One simulated job; each ``status()`` call writes the next epochs and reports the phase."""

    def __init__(self, backend: SimulatedBackend, spec: LaunchSpec, curve: Curve, fail: str | None,
                 fail_after: int) -> None:
        self.name, self.attempt = spec.name, spec.attempt
        self.spec = spec
        self._backend = backend
        self._curve = list(curve)
        self._fail = fail
        self._fail_after = fail_after
        self._epochs_written = 0
        self._phase = JobPhase.PENDING
        self._dir = local_path(spec.output_uri)
        os.makedirs(self._dir, exist_ok=True)

    @property
    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_interval_s=self._backend.poll_interval_s, deadline_s=self.spec.timeout_s)

    @property
    def epochs_written(self) -> int:
        return self._epochs_written

    def _write_epoch(self) -> None:
        e = self._epochs_written
        row = {"epoch": e + 1, self._backend.metric: float(self._curve[e])}
        with open(os.path.join(self._dir, METRICS_FILE), "a") as fh:
            fh.write(json.dumps(row) + "\n")
        self._epochs_written += 1

    def status(self) -> JobStatus:
        with self._backend.lock:
            if self._phase.terminal:
                return JobStatus(self._phase)
            if self._phase is JobPhase.PENDING:
                self._phase = JobPhase.RUNNING
                return JobStatus(JobPhase.RUNNING)
            limit = self._fail_after if self._fail is not None else len(self._curve)
            for _ in range(self._backend.epochs_per_poll):
                if self._epochs_written >= limit:
                    break
                self._write_epoch()
            if self._epochs_written >= limit:
                if self._fail is not None:
                    self._phase = JobPhase.FAILED
                    return JobStatus(JobPhase.FAILED, self._fail)
                final = {self._backend.metric: float(self._curve[-1])}
                with open(os.path.join(self._dir, FINAL_METRICS_FILE), "w") as fh:
                    json.dump(final, fh)
                self._phase = JobPhase.SUCCEEDED
            return JobStatus(self._phase)

    def cancel(self) -> None:
        with self._backend.lock:
            if not self._phase.terminal:
                self._phase = JobPhase.CANCELLED
                self._backend.cancelled.append(self.name)

    def logs(self) -> str:
        return f"{self.name}: {self._epochs_written} epochs written, phase {self._phase.value}\n"


class SimulatedBackend(TrainingBackend):
    """Starts ``SimulatedJob``s whose curve is ``objective(trainer_config)``.

    The objective returns the metric per epoch, or raises ``SimulatedFailure`` to make the job fail. Earlier
    jobs of a step are found by ``attempts`` (as real backends find theirs), so the launch module adopts
    them. Records what happened for assertions:
    ``started`` (names in start order), ``cancelled``, ``max_running`` (most jobs running at once).
    """

    def __init__(self, objective: Objective, *, metric: str = "val_loss", epochs_per_poll: int = 1,
                 poll_interval_s: float = 1.0) -> None:
        if epochs_per_poll < 1:
            raise ValueError("epochs_per_poll must be >= 1")
        self.objective, self.poll_interval_s = objective, poll_interval_s
        self.metric = metric
        self.epochs_per_poll = epochs_per_poll
        self.jobs: dict[str, SimulatedJob] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.max_running = 0
        self.lock = threading.RLock()

    @classmethod
    def from_config(cls, cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                    clock: Clock | None = None) -> SimulatedBackend:
        raise NotImplementedError("construct SimulatedBackend directly")

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        return [j for j in self.jobs.values() if j.spec.step_name == spec.step_name]

    def create(self, spec: LaunchSpec) -> RunningJob:
        if not is_local(spec.output_uri):
            raise ValueError(f"SimulatedBackend writes local folders only, got {spec.output_uri!r}")
        with self.lock:
            if spec.name in self.jobs:
                raise ValueError(f"job {spec.name} exists already: create must not be called for it")
            fail: str | None = None
            fail_after = 0
            try:
                curve = list(self.objective(dict(spec.trainer_config)))
            except SimulatedFailure as err:
                curve, fail, fail_after = err.curve, str(err), min(err.epochs, len(err.curve))
            if fail is None and not curve:
                raise ValueError("objective returned an empty curve")
            job = SimulatedJob(self, spec, curve, fail, fail_after)
            self.jobs[spec.name] = job
            self.started.append(spec.name)
            running = sum(not j._phase.terminal for j in self.jobs.values())
            self.max_running = max(self.max_running, running)
            return job

    @property
    def epochs_run(self) -> int:
        """Epochs written by every job (the compute a tuning run spent)."""
        return sum(j.epochs_written for j in self.jobs.values())
