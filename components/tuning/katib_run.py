"""The Katib engine: an Experiment run through the shared custom-resource launcher and the one wait path, and
its Trials turned into the same trial records the Optuna engine produces (so both report alike)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from components._core.artifacts import write_text
from components._core.jobs import JobStatus, Launch, wait
from components._core.k8s import (
    Cleanup,
    CustomResourceJob,
    CustomResourceLauncher,
    api_policy_for,
    launch,
    terminal_condition,
    transient_api_error,
)
from components._core.waiting import Clock, DeadlineExceeded
from components.training.launch import KubeflowOptions, LaunchError
from components.tuning.katib import (
    EXPERIMENT_LABEL,
    GROUP,
    MAX_NAME,
    PLURAL,
    TRIAL_EXPERIMENT_LABEL,
    TRIAL_PLURAL,
    VERSION,
)
from components.tuning.results import StopReason, TrialOutcome
from components.tuning.samplers import distributions
from components.tuning.spec import TuningSpec

_TRIAL_STATES = {"Succeeded": TrialOutcome.SUCCEEDED, "EarlyStopped": TrialOutcome.EARLY_STOPPED,
                 "Failed": TrialOutcome.FAILED, "MetricsUnavailable": TrialOutcome.FAILED,
                 "Killed": TrialOutcome.KILLED}
_OPTUNA_STATES = {TrialOutcome.SUCCEEDED: TrialState.COMPLETE, TrialOutcome.EARLY_STOPPED: TrialState.PRUNED,
                  TrialOutcome.FAILED: TrialState.FAIL, TrialOutcome.KILLED: TrialState.FAIL,
                  TrialOutcome.RUNNING: TrialState.RUNNING}


def _trial_state(obj: Mapping[str, Any]) -> tuple[TrialOutcome, str]:
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    for cond in reversed(conditions):
        if cond.get("type") in _TRIAL_STATES:
            return _TRIAL_STATES[cond["type"]], str(cond.get("message") or cond.get("reason") or "")
    return TrialOutcome.RUNNING, ""


def _observed(obj: Mapping[str, Any], metric: str, strategy: str) -> float | None:
    for m in ((obj.get("status") or {}).get("observation") or {}).get("metrics") or []:
        if m.get("name") == metric:
            try:
                value = float(m.get(strategy if strategy in ("min", "max") else "latest"))
            except (TypeError, ValueError):
                return None
            return value if math.isfinite(value) else None
    return None


def _typed(value: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, IntDistribution):
        return int(float(value))
    if isinstance(dist, FloatDistribution):
        return float(value)
    assert isinstance(dist, CategoricalDistribution)
    return next((c for c in dist.choices if str(c) == value), value)


def frozen_trials(trials: Sequence[Mapping[str, Any]], spec: TuningSpec) -> list[FrozenTrial]:
    """Katib Trial objects as Optuna trials (numbered by creation), so both engines report alike."""
    dists = distributions(spec)
    ordered = sorted(trials, key=lambda o: (str(o["metadata"].get("creationTimestamp", "")), o["metadata"]["name"]))
    out: list[FrozenTrial] = []
    for number, obj in enumerate(ordered):
        outcome, message = _trial_state(obj)
        value = _observed(obj, spec.metric, spec.objective.strategy)
        if outcome is TrialOutcome.SUCCEEDED and value is None:
            outcome, message = TrialOutcome.FAILED, f"succeeded but reported no {spec.metric!r}"
        assigned = {a["name"]: a["value"] for a in (obj.get("spec") or {}).get("parameterAssignments") or []}
        params = {k: _typed(str(v), dists[k]) for k, v in assigned.items() if k in dists}
        state = _OPTUNA_STATES[outcome]
        trial = optuna.trial.create_trial(
            state=state, value=value if state is TrialState.COMPLETE else None, params=params,
            distributions={k: dists[k] for k in params},
            user_attrs={"trial": {"name": obj["metadata"]["name"]},
                        "result": {"state": outcome.value, "value": value, "message": message[:500],
                                   "completion_order": number + 1}})
        trial.number = number
        out.append(trial)
    return out


def stop_reason(experiment: Mapping[str, Any]) -> StopReason:
    """Why a finished Experiment stopped, from its terminal condition's reason."""
    _, cond = terminal_condition(dict(experiment))
    reason = str((cond or {}).get("reason", ""))
    for r in StopReason:
        if r.value in reason:
            return r
    return StopReason.MAX_TRIALS if (cond or {}).get("type") == "Succeeded" else StopReason.MAX_FAILED_TRIALS


@dataclass(frozen=True)
class KatibRun:
    """How an Experiment ended: its terminal status, last object, Trials, and the attempt that ran."""

    status: JobStatus
    experiment: dict[str, Any]
    trials: list[dict[str, Any]]
    launch: Launch


class KatibEngine:
    """Runs an Experiment to its end through the shared launcher and the one wait path; clients injected or
    built on first use. Attempts: a retried step adopts a running or succeeded Experiment and creates the next
    attempt (``<name>-a2``) after a failed or deleted one."""

    def __init__(self, options: KubeflowOptions, *, api: Any = None, core_api: Any = None,
                 clock: Clock | None = None):
        self.options, self._api, self._core_api, self._clock = options, api, core_api, clock

    @functools.cached_property
    def launcher(self) -> CustomResourceLauncher:
        """The shared launcher bound to Experiments in the namespace (clients made on first use)."""
        return CustomResourceLauncher(self._api, GROUP, VERSION, PLURAL, self.options.namespace,
                                      core_api=self._core_api, clock=self._clock,
                                      retry=api_policy_for(self.options.wait))

    def run(self, step: str, manifest_for: Callable[[str], dict[str, Any]], *, timeout_s: float,
            logs_uri: str | None = None) -> KatibRun:
        """Start or adopt attempt N of the Experiment ``step`` (``manifest_for(name)`` builds it), wait for it to
        end (SIGTERM and the deadline delete it), write the attempt history and logs to ``logs_uri``; return how
        it ended with its Trials."""
        policy = self.options.wait.policy(timeout_s, transient_api_error)
        cleanup = Cleanup(on_success=self.options.delete_on_success, on_failure=self.options.delete_on_failure)

        def job_for(name: str, attempt: int) -> CustomResourceJob:
            return CustomResourceJob(self.launcher, name, attempt=attempt, policy=policy, cleanup=cleanup,
                                     label_selector=f"{EXPERIMENT_LABEL}={name}")

        launched = launch(self.launcher, step, manifest_for, job_for, max_len=MAX_NAME)
        job = launched.job
        assert isinstance(job, CustomResourceJob)
        try:
            status = wait(job, clock=self._clock)
        except DeadlineExceeded as err:
            raise LaunchError(f"Katib Experiment {job.name}: {err}") from err
        finally:
            if logs_uri:
                write_text(launched.history_text() + job.logs(), logs_uri)
        trials = self.launcher_for_trials().list(f"{TRIAL_EXPERIMENT_LABEL}={job.name}")
        return KatibRun(status, job.last or {}, trials, launched)

    def launcher_for_trials(self) -> CustomResourceLauncher:
        """The launcher bound to the Experiment's Trials (same clients)."""
        return CustomResourceLauncher(self.launcher.api, GROUP, VERSION, TRIAL_PLURAL, self.options.namespace,
                                      core_api=self.launcher.core_api, clock=self._clock, retry=self.launcher.retry)
