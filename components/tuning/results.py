"""What a tuning run produced, whatever ran it (the Optuna engine or a Katib Experiment): trials in Katib's
states, the trials table, the best trial, and why the experiment stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import polars as pl
from optuna.trial import FrozenTrial, TrialState

from components.tuning.params import BestParams
from components.tuning.spec import TuningSpec


class TrialOutcome(StrEnum):
    """A trial's state, in Katib's words."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EARLY_STOPPED = "EarlyStopped"
    KILLED = "Killed"


class StopReason(StrEnum):
    """Why the study stopped (Katib's experiment condition reasons where Katib has one)."""

    GOAL_REACHED = "ExperimentGoalReached"
    MAX_FAILED_TRIALS = "ExperimentMaxFailedTrialsReached"
    MAX_TRIALS = "ExperimentMaxTrialsReached"
    DEADLINE = "ExperimentDeadlineExceeded"


_SNAKE = {"Succeeded": "succeeded", "Failed": "failed", "EarlyStopped": "early_stopped", "Killed": "killed"}
SUCCESS_REASONS = (StopReason.GOAL_REACHED, StopReason.MAX_TRIALS)
_OPTUNA_OUTCOME = {
    TrialState.COMPLETE: TrialOutcome.SUCCEEDED,
    TrialState.PRUNED: TrialOutcome.EARLY_STOPPED,
    TrialState.FAIL: TrialOutcome.FAILED,
    TrialState.RUNNING: TrialOutcome.RUNNING,
    TrialState.WAITING: TrialOutcome.RUNNING,
}


@dataclass
class TuningResult:
    """What a tuning run produced: best parameters and value, the trials table, why it stopped."""

    spec: TuningSpec
    study_name: str
    storage: str
    stop_reason: StopReason
    best_params: dict[str, Any] | None
    best_value: float | None
    best_trial: str | None
    trials: pl.DataFrame
    frozen_trials: list[FrozenTrial] = field(repr=False)

    @property
    def succeeded(self) -> bool:
        """The experiment succeeded (goal or trial budget reached) and has a best trial."""
        return self.stop_reason in SUCCESS_REASONS and self.best_params is not None

    def best(self) -> BestParams | None:
        """The typed best-parameters output (None when no trial succeeded)."""
        if self.best_params is None or self.best_value is None:
            return None
        return BestParams(params=self.best_params, objective_metric_name=self.spec.metric,
                          direction=self.spec.direction, value=self.best_value, trial_name=self.best_trial or "",
                          study_name=self.study_name)

    def counts(self) -> dict[str, int]:
        """Trials per Katib state."""
        states = self.trials["state"].to_list()
        return {s.value: states.count(s.value) for s in TrialOutcome if s is not TrialOutcome.RUNNING}

    def metrics(self) -> dict[str, float]:
        """Scalar metrics for the KFP Metrics artifact."""
        out: dict[str, float] = {"trials": float(self.trials.height)}
        out.update({f"trials_{_SNAKE[k]}": float(v) for k, v in self.counts().items()})
        out["epochs_run"] = float(self.trials["intermediate_count"].sum() or 0)
        if self.best_value is not None:
            out[f"best_{self.spec.metric}"] = self.best_value
        return out

    def to_metadata(self) -> dict[str, Any]:
        """JSON-able summary (KFP artifact metadata / the step's summary file)."""
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "algorithm": self.spec.algorithm.algorithm_name,
            "objective_metric": self.spec.metric,
            "direction": self.spec.direction,
            "goal": self.spec.objective.goal,
            "stop_reason": self.stop_reason.value,
            "succeeded": self.succeeded,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_params": self.best_params,
            "trials": self.trials.height,
            "counts": self.counts(),
        }


def trial_info(t: FrozenTrial) -> dict[str, Any]:
    """What the engine recorded on a trial: ``trial`` (name, output_uri) at launch, ``result`` at the end."""
    return {**t.user_attrs.get("trial", {}), **t.user_attrs.get("result", {})}


def trial_outcome(t: FrozenTrial) -> TrialOutcome:
    """A trial's state in Katib's words (as recorded, else from its Optuna state)."""
    stored = trial_info(t).get("state")
    return TrialOutcome(stored) if stored else _OPTUNA_OUTCOME[t.state]


def trials_table(spec: TuningSpec, trials: list[FrozenTrial]) -> pl.DataFrame:
    """One row per trial, by number: name, Katib state, objective value, intermediate value count, duration,
    completion order, message, and one ``params_<name>`` column per parameter."""
    rows = sorted(trials, key=lambda t: t.number)
    info = [trial_info(t) for t in rows]
    cols: dict[str, pl.Series] = {
        "number": pl.Series([t.number for t in rows], dtype=pl.Int64),
        "name": pl.Series([i.get("name", "") for i in info], dtype=pl.String),
        "state": pl.Series([trial_outcome(t).value for t in rows], dtype=pl.String),
        "value": pl.Series([i.get("value") for i in info], dtype=pl.Float64),
        "intermediate_count": pl.Series([len(t.intermediate_values) for t in rows], dtype=pl.Int64),
        "duration_s": pl.Series([i.get("duration_s") for i in info], dtype=pl.Float64),
        "completion_order": pl.Series([i.get("completion_order") for i in info], dtype=pl.Int64),
        "message": pl.Series([i.get("message", "") for i in info], dtype=pl.String),
    }
    for p in spec.parameters:
        values = [t.params.get(p.name) for t in rows]
        if p.parameter_type == "int" or (
            p.parameter_type == "discrete" and all(isinstance(v, int) for v in p.choices())
        ):
            dtype: Any = pl.Int64
        elif p.parameter_type in ("double", "discrete"):
            dtype = pl.Float64
        else:
            dtype = pl.String
        cols[f"params_{p.name}"] = pl.Series(values, dtype=dtype, strict=False)
    return pl.DataFrame(cols)


def best_trial(spec: TuningSpec, trials: list[FrozenTrial]) -> FrozenTrial | None:
    """The succeeded trial with the best value (ties: the lower number), or None."""
    done = [t for t in trials
            if trial_outcome(t) is TrialOutcome.SUCCEEDED and trial_info(t).get("value") is not None]
    if not done:
        return None
    sign = 1.0 if spec.direction == "minimize" else -1.0
    return min(done, key=lambda t: (sign * float(trial_info(t)["value"]), t.number))


def tuning_result(spec: TuningSpec, *, study_name: str, storage: str, stop_reason: StopReason,
                  trials: list[FrozenTrial]) -> TuningResult:
    """The result of an experiment whose trials are ``trials`` (each engine turns its trials into these)."""
    best = best_trial(spec, trials)
    return TuningResult(
        spec=spec, study_name=study_name, storage=storage, stop_reason=stop_reason,
        best_params={p.name: best.params[p.name] for p in spec.parameters} if best else None,
        best_value=float(trial_info(best)["value"]) if best else None,
        best_trial=trial_info(best).get("name") if best else None,
        trials=trials_table(spec, trials), frozen_trials=trials,
    )
