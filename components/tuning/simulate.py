"""A simulated training backend: jobs that "train" by writing a synthetic learning curve, one epoch per poll.

It honours the launch contract (``metrics.jsonl`` one line per epoch with ``epoch`` and the metric, then
``final_metrics.json``) without torch or processes, so tuning runs are cheap and exactly reproducible: a job
advances ``epochs_per_poll`` epochs each time its status is read, so completion order depends only on the
curves' lengths and the poll order, never on wall time. Used by the tuning benchmark, tests, and dry runs.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from components._core.artifacts import is_local, local_path
from components.training.launch import JobPhase, JobStatus, LaunchSpec, RunningJob, TrainingBackend

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
        self.name = spec.name
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
    def epochs_written(self) -> int:
        return self._epochs_written

    def _write_epoch(self) -> None:
        e = self._epochs_written
        row = {"epoch": e + 1, self._backend.metric: float(self._curve[e])}
        with open(os.path.join(self._dir, "metrics.jsonl"), "a") as fh:
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
                with open(os.path.join(self._dir, "final_metrics.json"), "w") as fh:
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

    The objective returns the metric per epoch, or raises ``SimulatedFailure`` to make the job fail. Starting a
    name that is already known adopts that job (as real backends do). Records what happened for assertions:
    ``started`` (names in start order), ``cancelled``, ``max_running`` (most jobs running at once).
    """

    def __init__(self, objective: Objective, *, metric: str = "val_loss", epochs_per_poll: int = 1) -> None:
        if epochs_per_poll < 1:
            raise ValueError("epochs_per_poll must be >= 1")
        self.objective = objective
        self.metric = metric
        self.epochs_per_poll = epochs_per_poll
        self.jobs: dict[str, SimulatedJob] = {}
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.max_running = 0
        self.lock = threading.RLock()

    def start(self, spec: LaunchSpec) -> RunningJob:
        if not is_local(spec.output_uri):
            raise ValueError(f"SimulatedBackend writes local folders only, got {spec.output_uri!r}")
        with self.lock:
            if spec.name in self.jobs:
                return self.jobs[spec.name]
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
