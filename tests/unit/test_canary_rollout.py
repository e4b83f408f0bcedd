"""The rollout state machine on a scripted backend: every failure ends rolled back with its reason recorded, every
success promoted; never two canaries; SIGTERM rolls back."""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

import pytest

from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy
from components._core.signals import Terminated
from components.serving.canary.backend import ServingBackend
from components.serving.canary.rollout import RolloutConflict, run_rollout
from components.serving.target import DeployConfig, Served
from tests.fakes.clock import ManualClock

STABLE = Served("/models/a", "aaaa", {"data_version": "v1"})
CANDIDATE = Served("/models/b", "bbbb", {"data_version": "v2"})
ROWS = [{"x": float(i)} for i in range(40)]
LABELS = [i % 2 for i in range(40)]


class Readiness(RunningJob):
    def __init__(self, backend: Scripted, phases: list[JobPhase]) -> None:
        self.name, self.backend, self.phases, self.polls = "canary", backend, phases, 0

    @property
    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_interval_s=5, deadline_s=60)

    def status(self) -> JobStatus:
        self.polls += 1
        if self.backend.hook:
            self.backend.hook(self.polls)
        return JobStatus(self.phases[min(self.polls, len(self.phases)) - 1], "scripted")

    def cancel(self) -> None:
        self.backend.rollback()

    def logs(self) -> str:
        return ""


class Scripted(ServingBackend):
    """Records calls; ``ready`` scripts readiness; ``candidate_probs`` / ``stable_probs`` score rows."""

    def __init__(self, stable: Served | None = STABLE, pending: Served | None = None) -> None:
        self._stable, self._canary = stable, pending
        self.ready = [JobPhase.PENDING, JobPhase.SUCCEEDED]
        self.calls: list[str] = []
        self.hook: Any = None
        self.fail_candidate_every = 0
        self.candidate_quality, self.stable_quality = 0.9, 0.9
        self.percent = 100

    @classmethod
    def from_config(cls, cfg: DeployConfig, **clients: Any) -> Scripted:
        return cls()

    def stable(self) -> Served | None:
        return self._stable

    def canary(self) -> Served | None:
        return self._canary

    def deploy_canary(self, candidate: Served, percent: int) -> RunningJob:
        self.calls.append(f"deploy {candidate.version} {percent}")
        self._canary, self.percent = candidate, percent
        return Readiness(self, self.ready)

    def _probs(self, rows: Sequence[dict[str, Any]], quality: float) -> list[float]:
        return [quality if int(r["x"]) % 2 else 1 - quality for r in rows]

    def predict(self, which: str, rows: Sequence[dict[str, Any]]) -> list[float]:
        self.calls.append(f"predict {which}")
        if which == "candidate":
            if self.fail_candidate_every and self.calls.count("predict candidate") % self.fail_candidate_every == 0:
                raise ConnectionError("500 Internal Server Error")
            return self._probs(rows, self.candidate_quality)
        return self._probs(rows, self.stable_quality)

    def observed_traffic(self, probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        return {"bbbb": self.percent / 100, "aaaa": 1 - self.percent / 100} if self._stable else {"bbbb": 1.0}

    def promote(self) -> None:
        self.calls.append("promote")
        self._stable, self._canary = self._canary, None

    def rollback(self) -> None:
        self.calls.append("rollback")
        self._canary = None


def config(**kw: Any) -> DeployConfig:
    return DeployConfig.parse({"canary_percent": 10, "readiness_timeout_s": 60, "smoke": {"requests": 20},
                               "compare": {"rows": 40}, **kw})


def rollout(backend: Scripted, **kw: Any):
    return run_rollout(backend, CANDIDATE, config(**kw), ROWS, LABELS, clock=ManualClock().clock())


def test_a_good_candidate_is_deployed_at_n_percent_checked_and_promoted() -> None:
    backend = Scripted()
    record = rollout(backend)
    assert record.promoted and backend.stable() == CANDIDATE and backend.canary() is None
    assert backend.calls[0] == "deploy bbbb 10" and backend.calls[-1] == "promote"
    assert [s["state"] for s in record.states] == ["deploy", "ready", "smoke", "compare", "traffic", "promote"]
    assert all(s["outcome"] == "ok" for s in record.states)
    assert record.traffic == {"bbbb": 0.1, "aaaa": 0.9}
    assert record.to_dict()["serving"]["version"] == "bbbb" and record.to_dict()["stable"]["version"] == "aaaa"


def test_a_first_deployment_takes_all_traffic_and_skips_the_comparison() -> None:
    backend = Scripted(stable=None)
    record = rollout(backend)
    assert record.promoted and backend.calls[0] == "deploy bbbb 100"
    assert "compare" not in [s["state"] for s in record.states] and "first deployment" in record.reasons[0]


@pytest.mark.parametrize("phases,reason", [
    ([JobPhase.PENDING, JobPhase.FAILED], "candidate not ready: Failed"),
    ([JobPhase.PENDING], "did not finish within 60s"),
])
def test_a_candidate_that_is_never_ready_is_rolled_back(phases: list[JobPhase], reason: str) -> None:
    backend = Scripted()
    backend.ready = phases
    record = rollout(backend)
    assert record.decision == "rolled_back" and reason in record.reasons[0]
    assert backend.stable() == STABLE and backend.canary() is None and "promote" not in backend.calls
    assert record.states[-1]["state"] == "rollback"


def test_a_failing_smoke_test_rolls_back_naming_the_error() -> None:
    backend = Scripted()
    backend.fail_candidate_every = 4
    record = rollout(backend)
    assert record.decision == "rolled_back"
    reason = record.reasons[0]
    assert "smoke test: 5 of 20 requests failed" in reason and "500 Internal Server Error" in reason
    assert backend.stable() == STABLE


def test_a_slow_candidate_fails_the_smoke_test() -> None:
    backend = Scripted()
    record = rollout(backend, smoke={"requests": 20, "max_p99_ms": 0.000001})
    assert record.decision == "rolled_back" and "p99 latency" in record.reasons[0]


def test_a_candidate_worse_than_the_stable_model_is_rolled_back() -> None:
    backend = Scripted()
    backend.candidate_quality = 0.4  # ranks the rows backwards: AUC 0
    record = rollout(backend)
    assert record.decision == "rolled_back" and "comparison: candidate auc 0.0000 vs stable 1.0000" in record.reasons[0]
    compare = next(s for s in record.states if s["state"] == "compare")
    assert compare["outcome"] == "failed"


def test_another_models_canary_in_progress_is_refused_before_anything_changes() -> None:
    other = Served("/models/c", "cccc")
    backend = Scripted(pending=other)
    with pytest.raises(RolloutConflict, match="canary cccc"):
        rollout(backend)
    assert backend.calls == [] and backend.canary() == other


def test_a_retried_step_takes_over_its_own_canary() -> None:
    backend = Scripted(pending=CANDIDATE)
    assert rollout(backend).promoted


def test_the_model_already_serving_is_not_rolled_out_again() -> None:
    backend = Scripted(stable=CANDIDATE)
    record = rollout(backend)
    assert record.promoted and backend.calls == []


def test_sigterm_while_waiting_for_readiness_rolls_back() -> None:
    backend = Scripted()
    backend.ready = [JobPhase.PENDING]
    backend.hook = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None
    with pytest.raises(Terminated):
        rollout(backend)
    assert "rollback" in backend.calls and backend.stable() == STABLE and backend.canary() is None


def test_sigterm_during_the_smoke_test_rolls_back() -> None:
    backend = Scripted()
    original = backend.predict

    def predict(which: str, rows: Sequence[dict[str, Any]]) -> list[float]:
        if backend.calls.count("predict candidate") == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(which, rows)

    backend.predict = predict  # type: ignore[method-assign]
    with pytest.raises(Terminated):
        rollout(backend)
    assert backend.calls.count("rollback") == 1 and "promote" not in backend.calls


def test_an_unexpected_error_rolls_back_then_raises() -> None:
    backend = Scripted()

    def broken(probe: Sequence[dict[str, Any]]) -> dict[str, float]:
        raise KeyError("traffic")

    backend.observed_traffic = broken  # type: ignore[method-assign]
    with pytest.raises(KeyError):
        rollout(backend)
    assert backend.calls[-1] == "rollback" and backend.stable() == STABLE
