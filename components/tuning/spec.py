"""The tuning spec: one strict model mirroring Katib's ``Experiment.spec`` (v1beta1), field for field.

``TuningSpec.model_dump(by_alias=True, exclude_none=True)`` is a valid Katib ``ExperimentSpec`` fragment
(``objective``, ``algorithm``, ``parameters``, ``parallelTrialCount``, ``maxTrialCount``, ``maxFailedTrialCount``,
``earlyStopping``), with Katib's own types: feasible-space bounds and lists and algorithm setting values are
strings. The same spec drives the Optuna engine (``optuna_engine``) and the Katib Experiment builder (``katib``),
so it accepts only what both can run:

- algorithms ``tpe``, ``multivariate-tpe``, ``random``, ``grid``, ``cmaes`` with Katib's Optuna-suggestion setting
  names (``n_startup_trials``, ``n_ei_candidates``, ``random_state``; cmaes ``restart_strategy``, ``sigma``);
- parameter types ``double``, ``int`` (``min``/``max``, optional ``step``, ``distribution`` ``uniform`` or
  ``logUniform``), ``categorical`` and ``discrete`` (``list``);
- early stopping ``medianstop`` with ``min_trials_required`` and ``start_step``.

Field names are Katib's camelCase aliases (snake_case attributes in Python); validation errors name the alias.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_serializer, field_validator, model_validator

from components._core.config import StrictConfig

AlgorithmName = Literal["tpe", "multivariate-tpe", "random", "grid", "cmaes"]
ParameterType = Literal["double", "int", "categorical", "discrete"]
Distribution = Literal["uniform", "logUniform"]
ObjectiveType = Literal["maximize", "minimize"]
StrategyValue = Literal["min", "max", "latest"]

PARAM_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
METRIC_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-/]*$"
MAX_SEED = 2**32 - 1
MAX_GRID = 1_000_000


def _int_in(lo: int, hi: int) -> Callable[[str], Any]:
    def check(raw: str) -> int:
        try:
            v = int(raw)
        except ValueError:
            raise ValueError(f"must be an integer, got {raw!r}") from None
        if not lo <= v <= hi:
            raise ValueError(f"must be in [{lo}, {hi}], got {v}")
        return v

    return check


def _positive_float(raw: str) -> float:
    try:
        v = float(raw)
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"must be a finite number > 0, got {raw!r}")
    return v


def _restart(raw: str) -> str | None:
    if raw in ("none", "None"):
        return None
    if raw == "ipop":
        return raw
    raise ValueError(f"must be one of 'ipop', 'none', got {raw!r}")


_SEED = _int_in(0, MAX_SEED)
_TPE_SETTINGS: dict[str, Callable[[str], Any]] = {
    "n_startup_trials": _int_in(0, 10_000),
    "n_ei_candidates": _int_in(1, 10_000),
    "random_state": _SEED,
}
# Katib's Optuna suggestion service accepts exactly these names per algorithm (and rejects others).
ALGORITHM_SETTINGS: dict[str, dict[str, Callable[[str], Any]]] = {
    "tpe": _TPE_SETTINGS,
    "multivariate-tpe": _TPE_SETTINGS,
    "random": {"random_state": _SEED},
    "grid": {"random_state": _SEED},
    "cmaes": {"restart_strategy": _restart, "sigma": _positive_float, "random_state": _SEED},
}
MEDIANSTOP_SETTINGS: dict[str, Callable[[str], Any]] = {
    "min_trials_required": _int_in(1, 10_000),
    "start_step": _int_in(1, 100_000),
}
MEDIANSTOP_DEFAULTS = {"min_trials_required": 3, "start_step": 4}  # Katib's medianstop defaults


def _katib_number(v: float | None) -> str | None:
    """Katib's string form of a number: integral values without a fraction (``"3"``), others as Python repr."""
    if v is None:
        return None
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _parse_number(raw: str) -> int | float:
    """A ``discrete`` value: int when it is written as an integer, else float."""
    try:
        return int(raw)
    except ValueError:
        pass
    v = float(raw)
    if not math.isfinite(v):
        raise ValueError(f"must be finite, got {raw!r}")
    return v


class KatibModel(StrictConfig):
    """StrictConfig with Katib's camelCase aliases: validated by alias or name, dumped by alias."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_default=True,
        use_enum_values=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )


class Setting(KatibModel):
    """One ``{name, value}`` algorithm setting; values are strings, as in Katib."""

    name: str = Field(min_length=1, max_length=63, description="setting name")
    value: str = Field(max_length=256, description="setting value, a string as in Katib")

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return str(v).lower()
        return str(v) if isinstance(v, int | float) else v


def _parse_settings(
    settings: list[Setting], allowed: dict[str, Callable[[str], Any]], owner: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in settings:
        if s.name not in allowed:
            raise ValueError(f"unknown setting {s.name!r} for {owner}; allowed: {sorted(allowed)}")
        if s.name in out:
            raise ValueError(f"setting {s.name!r} is given twice")
        try:
            out[s.name] = allowed[s.name](s.value)
        except ValueError as err:
            raise ValueError(f"setting {s.name!r} of {owner}: {err}") from None
    return out


class MetricStrategy(KatibModel):
    """How a trial's value is extracted from its reported observations of one metric."""

    name: str = Field(min_length=1, max_length=128, pattern=METRIC_NAME, description="metric name")
    value: StrategyValue = Field(description="min, max or latest of the reported values")


class ObjectiveSpec(KatibModel):
    """Katib ``ObjectiveSpec``: what to optimize and when to stop early."""

    type: ObjectiveType = Field(description="maximize or minimize the objective metric")
    goal: float | None = Field(
        None, allow_inf_nan=False,
        description="stop as soon as the best trial reaches this value (>= for maximize, <= for minimize)",
    )
    objective_metric_name: str = Field(
        alias="objectiveMetricName", min_length=1, max_length=128, pattern=METRIC_NAME,
        description="metric key in each trial's metrics.jsonl (e.g. val_loss)",
    )
    additional_metric_names: list[str] | None = Field(
        None, alias="additionalMetricNames", max_length=32, description="other metrics recorded per trial"
    )
    metric_strategies: list[MetricStrategy] | None = Field(
        None, alias="metricStrategies", max_length=33,
        description="per-metric extraction rule; the objective defaults to min (minimize) or max (maximize)",
    )

    @model_validator(mode="after")
    def _check(self) -> ObjectiveSpec:
        names = [s.name for s in self.metric_strategies or []]
        if len(set(names)) != len(names):
            raise ValueError("metricStrategies names must be unique")
        extra = self.additional_metric_names or []
        if self.objective_metric_name in extra:
            raise ValueError("additionalMetricNames must not repeat objectiveMetricName")
        return self

    @property
    def strategy(self) -> StrategyValue:
        """The objective metric's extraction rule (Katib's default: the objective's direction)."""
        for s in self.metric_strategies or []:
            if s.name == self.objective_metric_name:
                return s.value
        return "min" if self.type == "minimize" else "max"


class AlgorithmSpec(KatibModel):
    """Katib ``AlgorithmSpec``: the suggestion algorithm and its settings (Katib's Optuna suggestion names)."""

    algorithm_name: AlgorithmName = Field(
        "tpe", alias="algorithmName", description="tpe, multivariate-tpe, random, grid or cmaes"
    )
    algorithm_settings: list[Setting] = Field(
        default_factory=list, alias="algorithmSettings", max_length=16,
        description="name/value settings: tpe n_startup_trials, n_ei_candidates, random_state; "
        "random/grid random_state; cmaes restart_strategy, sigma, random_state",
    )

    @model_validator(mode="after")
    def _check(self) -> AlgorithmSpec:
        self.options()
        return self

    def options(self) -> dict[str, Any]:
        """Typed settings (only those given)."""
        return _parse_settings(
            self.algorithm_settings, ALGORITHM_SETTINGS[self.algorithm_name], f"algorithm {self.algorithm_name}"
        )


class EarlyStoppingSpec(KatibModel):
    """Katib ``EarlyStoppingSpec``: median stopping of trials whose intermediate metric trails the median."""

    algorithm_name: Literal["medianstop"] = Field(
        "medianstop", alias="algorithmName", description="early stopping algorithm (medianstop)"
    )
    algorithm_settings: list[Setting] = Field(
        default_factory=list, alias="algorithmSettings", max_length=4,
        description="min_trials_required (default 3), start_step (default 4)",
    )

    @model_validator(mode="after")
    def _check(self) -> EarlyStoppingSpec:
        self.options()
        return self

    def options(self) -> dict[str, int]:
        """Typed settings with Katib's defaults filled in."""
        given = _parse_settings(self.algorithm_settings, MEDIANSTOP_SETTINGS, "earlyStopping medianstop")
        return {**MEDIANSTOP_DEFAULTS, **given}


class FeasibleSpace(KatibModel):
    """Katib ``FeasibleSpace``: ``min``/``max``/``step``/``distribution`` for numbers, ``list`` for choices."""

    low: float | None = Field(None, alias="min", allow_inf_nan=False, description="lower bound (double, int)")
    high: float | None = Field(
        None, alias="max", allow_inf_nan=False, description="upper bound, inclusive (double, int)"
    )
    step: float | None = Field(None, gt=0, allow_inf_nan=False, description="quantization step (double, int)")
    distribution: Distribution | None = Field(
        None, description="uniform (default) or logUniform (double, int)"
    )
    values: list[str] | None = Field(
        None, alias="list", min_length=1, max_length=1000, description="choices (categorical, discrete)"
    )

    @field_validator("values", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [str(x).lower() if isinstance(x, bool) else str(x) if isinstance(x, int | float) else x
                    for x in v]
        return v

    @field_serializer("low", "high", "step")
    def _katib(self, v: float | None) -> str | None:
        return _katib_number(v)


class ParameterSpec(KatibModel):
    """Katib ``ParameterSpec``: one hyperparameter; ``name`` is a (dotted) key of the trainer config."""

    name: str = Field(
        min_length=1, max_length=128, pattern=PARAM_NAME,
        description="trainer config key, dotted for nested keys (e.g. optimizer.lr)",
    )
    parameter_type: ParameterType = Field(alias="parameterType", description="double, int, categorical, discrete")
    feasible_space: FeasibleSpace = Field(alias="feasibleSpace", description="range or list of values")

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        fs = self.feasible_space
        if self.parameter_type in ("double", "int"):
            if fs.low is None or fs.high is None:
                raise ValueError(f"{self.parameter_type} parameter {self.name!r} needs feasibleSpace.min and max")
            if fs.values is not None:
                raise ValueError(f"{self.parameter_type} parameter {self.name!r} takes min/max, not list")
            if not fs.low < fs.high:
                raise ValueError(f"parameter {self.name!r}: feasibleSpace.min must be < max")
            if self.parameter_type == "int":
                for key, v in (("min", fs.low), ("max", fs.high), ("step", fs.step)):
                    if v is not None and not float(v).is_integer():
                        raise ValueError(f"int parameter {self.name!r}: feasibleSpace.{key} must be an integer")
            if fs.step is not None and fs.step > fs.high - fs.low:
                raise ValueError(f"parameter {self.name!r}: feasibleSpace.step exceeds max - min")
            if fs.distribution == "logUniform":
                if fs.low <= 0:
                    raise ValueError(f"parameter {self.name!r}: logUniform needs feasibleSpace.min > 0")
                if fs.step is not None:
                    raise ValueError(f"parameter {self.name!r}: logUniform cannot be combined with step")
        else:
            if fs.values is None:
                raise ValueError(f"{self.parameter_type} parameter {self.name!r} needs feasibleSpace.list")
            if any(v is not None for v in (fs.low, fs.high, fs.step, fs.distribution)):
                raise ValueError(
                    f"{self.parameter_type} parameter {self.name!r} takes only list (no min/max/step/distribution)"
                )
            if len(set(fs.values)) != len(fs.values):
                raise ValueError(f"parameter {self.name!r}: feasibleSpace.list has duplicates")
            if self.parameter_type == "discrete":
                try:
                    values = [_parse_number(v) for v in fs.values]
                except ValueError:
                    raise ValueError(f"discrete parameter {self.name!r}: every list value must be a number") from None
                if len(set(values)) != len(values):
                    raise ValueError(f"parameter {self.name!r}: feasibleSpace.list has duplicate numbers")
        return self

    @property
    def log(self) -> bool:
        return self.feasible_space.distribution == "logUniform"

    def choices(self) -> list[Any]:
        """Typed choices of a categorical (strings) or discrete (numbers) parameter."""
        values = self.feasible_space.values or []
        return [_parse_number(v) for v in values] if self.parameter_type == "discrete" else list(values)

    def grid(self) -> list[Any]:
        """Every value a grid search visits; a double needs a step, an int steps by ``step`` or 1."""
        fs = self.feasible_space
        if self.parameter_type in ("categorical", "discrete"):
            return self.choices()
        assert fs.low is not None and fs.high is not None
        if self.parameter_type == "int":
            step = int(fs.step or 1)
            return list(range(int(fs.low), int(fs.high) + 1, step))
        if fs.step is None:
            raise ValueError(f"grid needs feasibleSpace.step for double parameter {self.name!r}")
        n = math.floor((fs.high - fs.low) / fs.step + 1e-9) + 1
        if n > MAX_GRID:
            raise ValueError(f"parameter {self.name!r} has {n} grid values (more than {MAX_GRID})")
        return [round(fs.low + i * fs.step, 12) for i in range(n)]


class TuningSpec(KatibModel):
    """Katib ``ExperimentSpec`` subset run by the tuning step (Optuna engine) or as a Katib Experiment."""

    objective: ObjectiveSpec = Field(description="metric to optimize, direction and goal")
    algorithm: AlgorithmSpec = Field(default_factory=AlgorithmSpec, description="suggestion algorithm")
    parameters: list[ParameterSpec] = Field(min_length=1, max_length=64, description="search space")
    parallel_trial_count: int = Field(
        3, alias="parallelTrialCount", ge=1, le=256, description="trials running at once (Katib default 3)"
    )
    max_trial_count: int = Field(
        12, alias="maxTrialCount", ge=1, le=10_000, description="trial budget: stop when this many have finished"
    )
    max_failed_trial_count: int = Field(
        3, alias="maxFailedTrialCount", ge=0, le=10_000,
        description="the experiment fails when more trials than this have failed",
    )
    early_stopping: EarlyStoppingSpec | None = Field(
        None, alias="earlyStopping", description="median stopping from intermediate metrics; off when absent"
    )

    @model_validator(mode="after")
    def _check(self) -> TuningSpec:
        names = [p.name for p in self.parameters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameter names must be unique; repeated: {dupes}")
        for a in names:
            for b in names:
                if b.startswith(a + "."):
                    raise ValueError(f"parameter {b!r} is nested under parameter {a!r}")
        if self.parallel_trial_count > self.max_trial_count:
            raise ValueError("parallelTrialCount must be <= maxTrialCount")
        if self.max_failed_trial_count > self.max_trial_count:
            raise ValueError("maxFailedTrialCount must be <= maxTrialCount")
        algo = self.algorithm.algorithm_name
        if algo == "cmaes" and sum(p.parameter_type in ("double", "int") for p in self.parameters) < 2:
            raise ValueError("cmaes needs at least two double or int parameters")
        if algo == "grid":
            combos = 1
            for p in self.parameters:
                if p.parameter_type == "double" and p.log:
                    raise ValueError(f"grid cannot search logUniform double parameter {p.name!r}; give a step")
                combos *= len(p.grid())
            if self.max_trial_count > combos:
                raise ValueError(f"maxTrialCount {self.max_trial_count} exceeds the {combos} grid combinations")
        return self

    @property
    def direction(self) -> ObjectiveType:
        return self.objective.type

    @property
    def metric(self) -> str:
        return self.objective.objective_metric_name

    def katib(self) -> dict[str, Any]:
        """The Katib ``ExperimentSpec`` fields this spec defines (alias names, Katib's string types)."""
        return self.model_dump(by_alias=True, exclude_none=True)

    def digest(self) -> str:
        """Short content hash: equal specs give equal digests (names studies, detects changed specs)."""
        canonical = json.dumps(self.katib(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def grid_space(self) -> dict[str, list[Any]]:
        """Every parameter's grid values (for the grid algorithm)."""
        return {p.name: p.grid() for p in self.parameters}
