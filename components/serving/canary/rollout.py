"""The rollout state machine, the same on every backend.

DEPLOY the candidate at N % (100 % when nothing serves yet) → READY (honest readiness, through the one wait path,
with a deadline) → SMOKE (real one-row requests to the candidate: schema, error rate, p99 latency) → COMPARE
(candidate and stable scored on the same labelled sample; skipped on a first deployment) → TRAFFIC (the split
observed) → PROMOTE to 100 %, or ROLLBACK to 0 % on any failure or SIGTERM. Never two canaries at once: a canary
of another model left by an earlier rollout is refused (one of the same model, a retried step, is taken over).
Every state, its timing and outcome, every status the platform reported, the traffic observed, the decision
and its reasons, and both models' lineage go into the ``RolloutRecord``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from components._core.jobs import JobPhase, wait
from components._core.signals import Terminated, on_sigterm
from components._core.waiting import Clock, DeadlineExceeded
from components.serving.canary.backend import RolloutFailure, ServingBackend
from components.serving.target import DeployConfig, Served

log = logging.getLogger(__name__)


class State(StrEnum):
    """Rollout states, in order."""

    DEPLOY = "deploy"
    READY = "ready"
    SMOKE = "smoke"
    COMPARE = "compare"
    TRAFFIC = "traffic"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class RolloutConflict(RuntimeError):
    """Another canary is in progress for this service."""


@dataclass
class RolloutRecord:
    """What happened in one rollout (the rollout record artifact)."""

    service: str
    backend: str
    candidate: Served
    stable: Served | None
    canary_percent: int
    states: list[dict[str, Any]] = field(default_factory=list)
    traffic: dict[str, float] = field(default_factory=dict)
    decision: str = ""  # "promoted" or "rolled_back"
    reasons: list[str] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        """The candidate serves all traffic now."""
        return self.decision == "promoted"

    @property
    def serving(self) -> Served | None:
        """The model serving after the rollout."""
        return self.candidate if self.promoted else self.stable

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record."""
        return {"service": self.service, "backend": self.backend, "canary_percent": self.canary_percent,
                "candidate": self.candidate.to_dict(), "stable": self.stable.to_dict() if self.stable else None,
                "states": self.states, "traffic": self.traffic, "decision": self.decision, "reasons": self.reasons,
                "statuses": self.statuses,
                "serving": self.serving.to_dict() if self.serving else None}


class _Recorder:
    def __init__(self, record: RolloutRecord, clock: Clock) -> None:
        self.record, self.clock = record, clock

    @contextmanager
    def state(self, state: State) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"state": state.value, "outcome": "ok"}
        started = self.clock.now()
        try:
            yield entry
        except BaseException as err:
            entry["outcome"] = "failed"
            entry.setdefault("detail", f"{type(err).__name__}: {err}")
            raise
        finally:
            entry["seconds"] = round(self.clock.now() - started, 3)
            self.record.states.append(entry)
            log.info("rollout %s: %s %s", self.record.service, state.value, entry["outcome"])


def _p99(latencies_ms: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(latencies_ms), 99)) if latencies_ms else math.inf


def smoke_test(backend: ServingBackend, rows: Sequence[dict[str, Any]], cfg: DeployConfig,
               timer: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """One-row requests to the candidate: every answer must be one probability in [0, 1], the error rate and the
    p99 latency within bounds. Returns the figures; raises ``RolloutFailure`` naming what failed."""
    n = cfg.smoke.requests
    picked = [rows[i % len(rows)] for i in range(n)]
    errors: list[str] = []
    latencies: list[float] = []
    for row in picked:
        started = timer()
        try:
            answer = backend.predict("candidate", [row])
        except Exception as err:  # an HTTP or protocol failure is a failed request
            errors.append(f"{type(err).__name__}: {err}")
            continue
        latencies.append((timer() - started) * 1000)
        if len(answer) != 1 or not (isinstance(answer[0], float) and 0.0 <= answer[0] <= 1.0):
            errors.append(f"answer is not one probability: {answer!r}"[:200])
    figures = {"requests": n, "errors": len(errors), "error_rate": len(errors) / n, "p99_ms": _p99(latencies)}
    if figures["error_rate"] > cfg.smoke.max_error_rate:
        raise RolloutFailure(f"smoke test: {len(errors)} of {n} requests failed (max rate "
                             f"{cfg.smoke.max_error_rate}); first: {errors[0]}")
    if figures["p99_ms"] > cfg.smoke.max_p99_ms:
        raise RolloutFailure(f"smoke test: p99 latency {figures['p99_ms']:.1f} ms > {cfg.smoke.max_p99_ms} ms")
    return figures


def score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """``metric`` of probabilities against 0/1 labels (higher is better except log loss), as the evaluation gate
    computes it (accuracy at 0.5)."""
    from components.evaluation.metrics import metric_function

    return float(metric_function(metric, 0.5, 10)(labels, probs))


def compare(backend: ServingBackend, rows: Sequence[dict[str, Any]], labels: Sequence[int], cfg: DeployConfig
            ) -> dict[str, Any]:
    """Candidate and stable scored on the same labelled rows through their endpoints; raises ``RolloutFailure``
    when the candidate is worse than the stable model beyond the tolerance."""
    n = min(cfg.compare.rows, len(rows))
    if n < 2 or len(set(labels[:n])) < 2:
        raise RolloutFailure(f"comparison needs labelled rows of both classes; got {n} rows")
    y = np.asarray(labels[:n], dtype=np.int64)
    metric = cfg.compare.metric
    cand = score(metric, y, np.asarray(backend.predict("candidate", rows[:n]), dtype=np.float64))
    stab = score(metric, y, np.asarray(backend.predict("stable", rows[:n]), dtype=np.float64))
    lower_is_better = metric == "log_loss"
    worse_by = (cand - stab) if lower_is_better else (stab - cand)
    figures = {"metric": metric, "rows": n, "candidate": cand, "stable": stab, "worse_by": worse_by,
               "tolerance": cfg.compare.tolerance}
    if worse_by > cfg.compare.tolerance:
        raise RolloutFailure(f"comparison: candidate {metric} {cand:.4f} vs stable {stab:.4f} is worse by "
                             f"{worse_by:.4f} > tolerance {cfg.compare.tolerance}")
    return figures


def run_rollout(backend: ServingBackend, candidate: Served, cfg: DeployConfig, rows: Sequence[dict[str, Any]],
                labels: Sequence[int], *, clock: Clock | None = None) -> RolloutRecord:
    """Roll ``candidate`` out on ``backend`` (see the module docstring); returns the record, promoted or rolled
    back. ``rows`` (feature values) and ``labels`` are the sample for the smoke test and the comparison.
    Raises ``RolloutConflict`` before touching anything when another model's canary is in progress, and
    ``Terminated`` (after rolling back) on SIGTERM."""
    clock = clock or Clock()
    pending = backend.canary()
    if pending is not None and pending.version != candidate.version:
        raise RolloutConflict(f"service {cfg.service}: canary {pending.version} ({pending.model_uri}) is in "
                              "progress; finish or roll it back before deploying another model")
    stable = backend.stable()
    if stable is not None and stable.version == candidate.version:
        record = RolloutRecord(cfg.service, str(cfg.backend), candidate, stable, 0, decision="promoted",
                               reasons=["the candidate is the model serving already"])
        return record
    percent = cfg.canary_percent if stable is not None else 100
    record = RolloutRecord(cfg.service, str(cfg.backend), candidate, stable, percent)
    steps = _Recorder(record, clock)

    def roll_back(reason: str) -> None:
        with steps.state(State.ROLLBACK) as entry:
            entry["detail"] = reason
            backend.rollback()
        record.decision = "rolled_back"
        record.reasons.append(reason)

    try:
        with on_sigterm(backend.rollback):
            with steps.state(State.DEPLOY) as entry:
                job = backend.deploy_canary(candidate, percent)
                entry["detail"] = f"{candidate.version} at {percent}%"
            with steps.state(State.READY) as entry:
                status = wait(job, clock=clock)
                entry["detail"] = f"{status.phase.value}: {status.message}"
                if status.phase is not JobPhase.SUCCEEDED:
                    raise RolloutFailure(f"candidate not ready: {status.phase.value}: {status.message}")
            with steps.state(State.SMOKE) as entry:
                entry["figures"] = smoke_test(backend, rows, cfg)
            if stable is not None:
                with steps.state(State.COMPARE) as entry:
                    entry["figures"] = compare(backend, rows, labels, cfg)
            with steps.state(State.TRAFFIC) as entry:
                record.traffic = backend.observed_traffic(rows[: cfg.traffic_probe] if cfg.traffic_probe else [])
                entry["detail"] = record.traffic
            with steps.state(State.PROMOTE):
                backend.promote()
            record.decision = "promoted"
            record.reasons.append("ready, smoke test passed" + (", not worse than the stable model"
                                                               if stable is not None else " (first deployment)"))
    except (RolloutFailure, DeadlineExceeded) as err:
        roll_back(str(err))
    except Terminated:
        record.decision, record.reasons = "rolled_back", ["SIGTERM: the rollout was interrupted and rolled back"]
        raise
    except Exception as err:  # an unexpected error: nothing half-deployed may take traffic
        roll_back(f"{type(err).__name__}: {err}")
        raise
    finally:
        record.statuses = backend.statuses()
    return record
