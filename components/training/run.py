"""Run one training job through any backend: start, wait with the shared waiter, cancel on SIGTERM or
Ctrl-C, fail with the logs' tail, return the final metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from components._core.artifacts import read_json, write_text
from components._core.signals import Terminated, on_sigterm
from components._core.waiting import Clock, DeadlineExceeded, wait_for
from components.training.launch import (
    JobPhase,
    JobStatus,
    LaunchError,
    LaunchSpec,
    RunningJob,
    TrainingBackend,
)

log = logging.getLogger(__name__)

TAIL_LINES = 30


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _failure(name: str, job: RunningJob, status: JobStatus, why: str) -> LaunchError:
    tail = _tail(job.logs())
    message = f"training job {name} {why}: {status.message}".rstrip(": ")
    if tail and tail not in status.message:
        message += f"\n--- last {TAIL_LINES} log lines ---\n{tail}"
    return LaunchError(message)


def run_training(spec: LaunchSpec, backend: TrainingBackend, *,
                 on_status: Callable[[JobStatus], None] | None = None,
                 interval_s: float = 2.0, clock: Clock | None = None,
                 logs_uri: str | None = None) -> dict[str, Any]:
    """Start ``spec`` on ``backend``, wait until it ends and return ``final_metrics.json``.

    With ``logs_uri``, the job's logs (every rank or pod) are written there however the job ends.
    """
    job = backend.start(spec)
    try:
        return _await(spec, job, on_status, interval_s, clock)
    finally:
        if logs_uri:
            write_text(job.logs(), logs_uri)


def _await(spec: LaunchSpec, job: RunningJob, on_status: Callable[[JobStatus], None] | None,
           interval_s: float, clock: Clock | None) -> dict[str, Any]:
    try:
        with on_sigterm():
            status = wait_for(job.status, lambda s: s.phase.terminal, timeout_s=spec.timeout_s,
                              interval_s=interval_s, what=f"training job {spec.name}", on_poll=on_status,
                              clock=clock)
    except (Terminated, KeyboardInterrupt) as err:
        job.cancel()
        message = f"training job {spec.name} cancelled: {str(err) or 'interrupted'}"
        log.error(message)  # Terminated exits quietly (it is a SystemExit): say why in the step's log
        raise Terminated(message) from err
    except DeadlineExceeded as err:
        job.cancel()
        raise _failure(spec.name, job, job.status(), f"cancelled after its {spec.timeout_s}s deadline") from err
    if status.phase != JobPhase.SUCCEEDED:
        raise _failure(spec.name, job, status, status.phase.lower())
    metrics: dict[str, Any] = read_json(f"{spec.output_uri.rstrip('/')}/final_metrics.json")
    return metrics
