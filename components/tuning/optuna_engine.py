"""The default tuning engine: an Optuna study in the tuning step, trials run through the training launch backend.

The study is driven by ask-and-tell so ``parallelTrialCount`` trials run at once on any ``TrainingBackend``
(local processes, PyTorchJobs, Vertex CustomJobs). Each trial is one ``LaunchSpec``: the base launch with a
deterministic name (base name + ``-t`` + trial number), its own output folder, and the trial's parameters merged
into the base ``trainer_config``. The engine polls the running jobs, reads each trial's new ``metrics.jsonl``
lines, reports the objective metric to Optuna (``trial.report(value, step=epoch)``), cancels trials the median
pruner stops, and tells Optuna how each trial ended. It stops in Katib's order: objective goal reached, then more
than ``maxFailedTrialCount`` failed trials, then ``maxTrialCount`` trials finished.

Trial states use Katib's words: Succeeded, Failed, EarlyStopped (pruned), Killed (cancelled by the tuner when the
experiment stopped, or by someone else). Storage is SQLite under the output folder by default or any SQLAlchemy
URL (PostgreSQL); a retried step with the same storage resumes the study and adopts the trials still running.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import optuna
import polars as pl
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner, MedianPruner, NopPruner
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from components._core.artifacts import filesystem, is_local, local_path
from components._core.waiting import Clock
from components.training.launch import JobPhase, JobStatus, LaunchSpec, RunningJob, TrainingBackend
from components.tuning.params import BestParams, merge_params
from components.tuning.spec import ParameterSpec, TuningSpec

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
FINAL_METRICS_FILE = "final_metrics.json"
MAX_NAME = 53
MAX_STATUS_ERRORS = 5


class TuningError(RuntimeError):
    """The study cannot run as specified (unsupported option, bad storage, missing package)."""


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


# ---------------------------------------------------------------- spec -> optuna


def distribution(param: ParameterSpec, *, grid: bool = False) -> BaseDistribution:
    """The Optuna distribution of one parameter (grid search: the grid values as categorical choices)."""
    fs = param.feasible_space
    if grid:
        return CategoricalDistribution(param.grid())
    if param.parameter_type == "double":
        assert fs.low is not None and fs.high is not None
        return FloatDistribution(fs.low, fs.high, log=param.log, step=fs.step)
    if param.parameter_type == "int":
        assert fs.low is not None and fs.high is not None
        return IntDistribution(int(fs.low), int(fs.high), log=param.log, step=int(fs.step or 1))
    return CategoricalDistribution(param.choices())


def distributions(spec: TuningSpec) -> dict[str, BaseDistribution]:
    """Every parameter's distribution, in spec order."""
    grid = spec.algorithm.algorithm_name == "grid"
    return {p.name: distribution(p, grid=grid) for p in spec.parameters}


class AskTellGridSampler(GridSampler):
    """GridSampler for ask-and-tell: Optuna's ``after_trial`` calls ``study.stop()`` once the grid is covered,
    which raises outside ``study.optimize``; here the engine's trial budget (validated <= the grid size) stops."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def build_sampler(spec: TuningSpec) -> BaseSampler:
    """The sampler for ``spec.algorithm`` with every option set explicitly (Optuna 5 changed TPE's defaults:
    multivariate and constant_liar are now on). Unset Katib settings take Optuna's documented values."""
    name = spec.algorithm.algorithm_name
    opts = spec.algorithm.options()
    seed: int | None = opts.get("random_state")
    if name in ("tpe", "multivariate-tpe"):
        return TPESampler(
            n_startup_trials=opts.get("n_startup_trials", 10),
            n_ei_candidates=opts.get("n_ei_candidates", 24),
            seed=seed,
            multivariate=name == "multivariate-tpe",
            group=False,
            constant_liar=True,  # as Katib's Optuna suggestion: running trials count as bad, so parallel asks spread
        )
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "grid":
        return AskTellGridSampler(spec.grid_space(), seed=seed)
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise TuningError("algorithm cmaes needs the 'cmaes' package, which this image does not have; "
                              "use tpe or multivariate-tpe, or add cmaes to the image")
        if opts.get("restart_strategy") is not None:
            raise TuningError("cmaes restart_strategy 'ipop' is not supported by Optuna >= 4.4 (it silently "
                              "falls back to none); remove the setting or run the spec as a Katib Experiment")
        return CmaEsSampler(
            sigma0=opts.get("sigma"),
            n_startup_trials=1,
            independent_sampler=RandomSampler(seed=seed),
            warn_independent_sampling=False,
            seed=seed,
            consider_pruned_trials=False,
            restart_strategy=None,
            use_separable_cma=False,
            with_margin=False,
            lr_adapt=False,
        )
    raise TuningError(f"unknown algorithm {name!r}")  # pragma: no cover - the spec rejects it first


def build_pruner(spec: TuningSpec) -> BasePruner:
    """Katib's medianstop as Optuna's MedianPruner: no pruning before ``min_trials_required`` trials have
    succeeded, nor before step ``start_step``; checked at every step."""
    if spec.early_stopping is None:
        return NopPruner()
    opts = spec.early_stopping.options()
    return MedianPruner(
        n_startup_trials=opts["min_trials_required"],
        n_warmup_steps=opts["start_step"],
        interval_steps=1,
        n_min_trials=1,
    )


# ---------------------------------------------------------------- helpers


def trial_name(base: str, number: int) -> str:
    """Deterministic DNS-1123 trial job name: ``<base>-t<number>``, the base shortened to fit 53 characters."""
    suffix = f"-t{number}"
    return base[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def redact(url: str) -> str:
    """A storage URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # never leak a URL we cannot parse
        return url.split("://")[0] + "://***"


def default_storage_url(output_dir: str) -> str:
    """SQLite database file under the step's (local) output folder."""
    if not is_local(output_dir):
        raise TuningError(f"the default SQLite storage needs a local output folder, got {output_dir!r}; "
                          "configure a PostgreSQL storage instead")
    path = os.path.abspath(os.path.join(local_path(output_dir), "study.db"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return f"sqlite:///{path}"


def open_storage(url: str) -> RDBStorage:
    """An Optuna RDB storage for an SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a commit no longer waits for a disk flush (12 ms each
    on the machines measured), and a crash loses at most the last commits, which a resumed study redoes."""
    sqlite = url.startswith("sqlite")
    try:
        storage = RDBStorage(url, engine_kwargs={} if sqlite else {"pool_pre_ping": True})
    except Exception as err:  # name the storage (without its password) and the cause
        raise TuningError(f"cannot open tuning storage {redact(url)}: {type(err).__name__}: {err}") from None
    if sqlite:
        from sqlalchemy import event

        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        event.listen(storage.engine, "connect", _pragmas)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


@dataclass
class _Observations:
    """Objective values a trial reported, by step, read incrementally from its metrics.jsonl."""

    lines_read: int = 0
    values: dict[int, float] = field(default_factory=dict)
    latest: float | None = None


def read_new_metrics(uri: str, obs: _Observations, metric: str) -> list[tuple[int, float]]:
    """Read complete lines of ``<uri>/metrics.jsonl`` past ``obs.lines_read``; return new (step, value) pairs
    of ``metric`` (step = the line's ``epoch``, else its line index). Bad lines are skipped with a warning."""
    fs, path = filesystem(join_uri(uri, METRICS_FILE))
    try:
        if not is_local(uri):
            fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        with fs.open(path, "r") as fh:
            text = fh.read()
    except (OSError, ValueError) as err:
        log.warning("cannot read %s yet: %s", path, err)
        return []
    lines = text.split("\n")[:-1]  # a last line without newline is still being written
    new: list[tuple[int, float]] = []
    for index in range(obs.lines_read, len(lines)):
        raw = lines[index].strip()
        if not raw:
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON; skipped", path, index + 1)
            continue
        value = row.get(metric) if isinstance(row, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        epoch = row.get("epoch", index)
        step = int(epoch) if isinstance(epoch, int | float) and not isinstance(epoch, bool) else index
        obs.latest = float(value)
        if step in obs.values or step < 0:
            continue
        obs.values[step] = float(value)
        new.append((step, float(value)))
    obs.lines_read = len(lines)
    return new


def _final_metric(uri: str, metric: str) -> float | None:
    fs, path = filesystem(join_uri(uri, FINAL_METRICS_FILE))
    try:
        if not fs.exists(path):
            return None
        with fs.open(path, "r") as fh:
            row = json.load(fh)
    except (OSError, ValueError):
        return None
    value = row.get(metric) if isinstance(row, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def extract_value(obs: _Observations, strategy: str, final: float | None = None) -> float | None:
    """A trial's objective value by Katib's metric strategy (min, max or latest of the observations)."""
    values = list(obs.values.values())
    if final is not None:
        values.append(final)
    if not values:
        return None
    if strategy == "min":
        return min(values)
    if strategy == "max":
        return max(values)
    return final if final is not None else obs.latest if obs.latest is not None else values[-1]


# ---------------------------------------------------------------- result


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


def _info(t: FrozenTrial) -> dict[str, Any]:
    """What the engine recorded on a trial: ``trial`` (name, output_uri) at launch, ``result`` at the end."""
    return {**t.user_attrs.get("trial", {}), **t.user_attrs.get("result", {})}


def _outcome(t: FrozenTrial) -> TrialOutcome:
    stored = _info(t).get("state")
    return TrialOutcome(stored) if stored else _OPTUNA_OUTCOME[t.state]


def trials_table(spec: TuningSpec, trials: list[FrozenTrial]) -> pl.DataFrame:
    """One row per trial, by number: name, Katib state, objective value, intermediate value count, duration,
    completion order, message, and one ``params_<name>`` column per parameter."""
    rows = sorted(trials, key=lambda t: t.number)
    info = [_info(t) for t in rows]
    cols: dict[str, pl.Series] = {
        "number": pl.Series([t.number for t in rows], dtype=pl.Int64),
        "name": pl.Series([i.get("name", "") for i in info], dtype=pl.String),
        "state": pl.Series([_outcome(t).value for t in rows], dtype=pl.String),
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


def _best(spec: TuningSpec, trials: list[FrozenTrial]) -> FrozenTrial | None:
    done = [t for t in trials if _outcome(t) is TrialOutcome.SUCCEEDED and _info(t).get("value") is not None]
    if not done:
        return None
    sign = 1.0 if spec.direction == "minimize" else -1.0
    return min(done, key=lambda t: (sign * float(_info(t)["value"]), t.number))


# ---------------------------------------------------------------- engine


@dataclass
class _Active:
    trial: optuna.trial.Trial
    name: str
    output_uri: str
    job: RunningJob
    started: float
    obs: _Observations = field(default_factory=_Observations)
    status_errors: int = 0
    reported: set[int] = field(default_factory=set)


class _Engine:
    def __init__(
        self,
        spec: TuningSpec,
        base: LaunchSpec,
        backend: TrainingBackend,
        study: optuna.Study,
        clock: Clock,
        poll_interval_s: float,
        timeout_s: float | None,
    ) -> None:
        self.spec, self.base, self.backend, self.study, self.clock = spec, base, backend, study, clock
        self.poll_interval_s = poll_interval_s
        self.deadline = clock.now() + timeout_s if timeout_s is not None else math.inf
        self.dists = distributions(spec)
        self.active: dict[int, _Active] = {}

    # -- bookkeeping from the storage (so a resumed study counts its earlier trials)
    def _trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def _finish(self, a: _Active, outcome: TrialOutcome, state: TrialState, value: float | None,
                message: str) -> None:
        trial = a.trial
        self.active.pop(trial.number, None)
        done = [t for t in self._trials() if t.state.is_finished()]
        order = 1 + max((int(_info(t).get("completion_order", 0)) for t in done), default=0)
        trial.set_user_attr("result", {  # one write: each storage write is a commit
            "state": outcome.value,
            "completion_order": order,
            "duration_s": round(self.clock.now() - a.started, 6),
            "message": message[:500],
            "value": value,
        })
        if state is TrialState.COMPLETE:
            assert value is not None
            self.study.tell(trial, value)
        else:
            self.study.tell(trial, state=state)
        log.info("trial %s %s (value %s) %s", a.name, outcome.value, value, message)

    def _launch(self, trial: optuna.trial.Trial, params: dict[str, Any], number: int) -> _Active | None:
        name = trial_name(self.base.name, number)
        out = join_uri(self.base.output_uri, "trials", name)
        trial.set_user_attr("trial", {"name": name, "output_uri": out})
        a_started = self.clock.now()
        try:
            data = self.base.model_dump()
            data.update(name=name, output_uri=out, trainer_config=merge_params(self.base.trainer_config, params))
            job = self.backend.start(LaunchSpec.parse(data))
        except Exception as err:  # a trial that cannot start is a failed trial, as in Katib
            self._finish(_Active(trial, name, out, _NoJob(name), a_started), TrialOutcome.FAILED, TrialState.FAIL,
                         None, f"could not start: {type(err).__name__}: {err}")
            return None
        except BaseException:  # interrupted while starting: record it, then let the interruption through
            self._finish(_Active(trial, name, out, _NoJob(name), a_started), TrialOutcome.KILLED, TrialState.FAIL,
                         None, "tuning step interrupted while starting the trial")
            raise
        a = _Active(trial, name, out, job, a_started)
        self.active[number] = a
        log.info("trial %s started with %s", name, params)
        return a

    def _start_next(self) -> None:
        trial = self.study.ask(self.dists)
        params = {p.name: trial.params[p.name] for p in self.spec.parameters}
        self._launch(trial, params, trial.number)

    def resume(self) -> None:
        """Adopt trials a previous attempt left running (backend.start adopts a job by its name)."""
        for t in self._trials():
            if t.state is not TrialState.RUNNING:
                continue
            trial = optuna.trial.Trial(self.study, t._trial_id)
            a = self._launch(trial, dict(t.params), t.number)
            if a is not None:
                a.reported = set(t.intermediate_values)
                a.obs.values = dict(t.intermediate_values)
                log.info("resumed trial %s", a.name)

    # -- one poll of one trial
    def _poll(self, a: _Active) -> None:
        try:
            status = a.job.status()
            a.status_errors = 0
        except Exception as err:  # transient API errors must not end the study
            a.status_errors += 1
            log.warning("status of %s failed (%d in a row): %s", a.name, a.status_errors, err)
            if a.status_errors >= MAX_STATUS_ERRORS:
                self._cancel(a)
                self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None, f"status unavailable: {err}")
            return
        new = read_new_metrics(a.output_uri, a.obs, self.spec.metric)
        for step, value in new:
            if step not in a.reported:
                a.trial.report(value, step)
                a.reported.add(step)
        self._settle(a, status, bool(new))

    def _settle(self, a: _Active, status: JobStatus, got_new: bool) -> None:
        phase = JobPhase(status.phase)
        if phase is JobPhase.SUCCEEDED:
            value = extract_value(a.obs, self.spec.objective.strategy, _final_metric(a.output_uri, self.spec.metric))
            if value is None:
                self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None,
                             f"succeeded but reported no {self.spec.metric!r}")
            else:
                self._finish(a, TrialOutcome.SUCCEEDED, TrialState.COMPLETE, value, status.message)
        elif phase is JobPhase.FAILED:
            self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None, status.message or "job failed")
        elif phase is JobPhase.CANCELLED:
            self._finish(a, TrialOutcome.KILLED, TrialState.FAIL, None, status.message or "job cancelled")
        elif got_new and a.trial.should_prune():
            self._cancel(a)
            value = extract_value(a.obs, self.spec.objective.strategy)
            step = max(a.reported)
            self._finish(a, TrialOutcome.EARLY_STOPPED, TrialState.PRUNED, value,
                         f"median stop at step {step}")
        elif self.clock.now() - a.started > self.base.timeout_s:
            self._cancel(a)
            self._finish(a, TrialOutcome.FAILED, TrialState.FAIL, None,
                         f"trial deadline of {self.base.timeout_s}s exceeded")

    def _cancel(self, a: _Active) -> None:
        try:
            a.job.cancel()
        except Exception as err:  # keep stopping the others
            log.warning("cancel of %s failed: %s", a.name, err)

    # -- Katib's stop order
    def stop_reason(self) -> StopReason | None:
        trials = self._trials()
        outcomes = [_outcome(t) for t in trials]
        best = _best(self.spec, trials)
        goal = self.spec.objective.goal
        if goal is not None and best is not None:
            value = float(_info(best)["value"])
            if (value <= goal) if self.spec.direction == "minimize" else (value >= goal):
                return StopReason.GOAL_REACHED
        if outcomes.count(TrialOutcome.FAILED) > self.spec.max_failed_trial_count:
            return StopReason.MAX_FAILED_TRIALS
        finished = sum(o is not TrialOutcome.RUNNING for o in outcomes)
        if finished >= self.spec.max_trial_count:
            return StopReason.MAX_TRIALS
        if self.clock.now() >= self.deadline:
            return StopReason.DEADLINE
        return None

    def run(self) -> StopReason:
        reason: StopReason | None = None
        try:
            self.resume()
            while True:
                for number in sorted(self.active):
                    self._poll(self.active[number])
                reason = self.stop_reason()
                if reason is not None:
                    return reason
                while len(self.active) < self.spec.parallel_trial_count and \
                        len(self._trials()) < self.spec.max_trial_count:
                    self._start_next()
                    reason = self.stop_reason()  # a trial that cannot start may exceed the failed limit
                    if reason is not None:
                        return reason
                if not self.active:
                    raise TuningError(f"study {self.study.study_name!r} has trials running that this step does not "
                                      "own (another step on the same study?); use a distinct study name")
                self.clock.sleep(self.poll_interval_s)
        finally:
            why = f"experiment stopped: {reason.value}" if reason else "tuning step interrupted"
            for number in sorted(self.active):
                a = self.active[number]
                self._cancel(a)
                try:
                    self._finish(a, TrialOutcome.KILLED, TrialState.FAIL, None, why)
                except Exception as err:  # keep cancelling; never mask the error that got us here
                    log.warning("could not record trial %s as killed: %s", a.name, err)


class _NoJob(RunningJob):
    """Stand-in handle for a trial whose job never started."""

    def __init__(self, name: str) -> None:
        self.name = name

    def status(self) -> JobStatus:
        return JobStatus(JobPhase.FAILED, "never started")

    def cancel(self) -> None:
        return None

    def logs(self) -> str:
        return ""


def run_tuning(
    spec: TuningSpec | Mapping[str, Any],
    base_launch: LaunchSpec,
    backend: TrainingBackend,
    *,
    output_dir: str,
    storage_url: str | None = None,
    storage: BaseStorage | None = None,
    study_name: str | None = None,
    clock: Clock | None = None,
    poll_interval_s: float = 5.0,
    timeout_s: float | None = None,
) -> TuningResult:
    """Run the study to a stop condition and return its result.

    ``storage_url``: an SQLAlchemy URL (PostgreSQL in production, password already resolved); default SQLite
    at ``<output_dir>/study.db``. ``storage``: an Optuna storage object instead (tests, benchmarks).
    ``study_name`` defaults to ``<base_launch.name>-<spec digest>``: a retried step with the same spec and storage
    resumes its study; a changed spec starts a new one. ``clock`` makes polling testable; ``timeout_s`` bounds the
    whole study (trials are bounded by ``base_launch.timeout_s`` each).
    """
    spec = TuningSpec.parse(spec)  # validated where it runs, too
    if poll_interval_s < 0:
        raise TuningError("poll_interval_s must be >= 0")
    try:
        merge_params(base_launch.trainer_config, dict.fromkeys((p.name for p in spec.parameters), 0))
    except ValueError as err:
        raise TuningError(f"parameters do not fit the base trainer_config: {err}") from None
    sampler = build_sampler(spec)
    pruner = build_pruner(spec)
    owned: RDBStorage | None = None
    if storage is None:
        url = storage_url or default_storage_url(output_dir)
        storage = owned = open_storage(url)
        shown = redact(url)
    else:
        shown = type(storage).__name__
    name = study_name or f"{base_launch.name}-{spec.digest()}"
    try:
        study = optuna.create_study(storage=storage, sampler=sampler, pruner=pruner, study_name=name,
                                    direction=spec.direction, load_if_exists=True)
        engine = _Engine(spec, base_launch, backend, study, clock or Clock(), poll_interval_s, timeout_s)
        reason = engine.run()
        trials = study.get_trials(deepcopy=True)
    finally:
        if owned is not None:
            owned.engine.dispose()  # close pooled database connections
    best = _best(spec, trials)
    return TuningResult(
        spec=spec,
        study_name=name,
        storage=shown,
        stop_reason=reason,
        best_params={p.name: best.params[p.name] for p in spec.parameters} if best else None,
        best_value=float(_info(best)["value"]) if best else None,
        best_trial=_info(best).get("name") if best else None,
        trials=trials_table(spec, trials),
        frozen_trials=trials,
    )
