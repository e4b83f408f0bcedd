"""The Optuna engine (``run_tuning``): trials through a TrainingBackend, parallelism, pruning, Katib's stop order,
determinism, resume and adoption, study attempts; on the simulated backend and a manual clock."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import optuna
import pytest
from optuna.pruners import MedianPruner, NopPruner
from optuna.samplers import GridSampler, RandomSampler, TPESampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from components._core.artifacts import local_path
from components._core.jobs import JobPhase, JobStatus, RunningJob, WaitPolicy
from components._core.signals import Terminated
from components._core.waiting import Clock
from components.training.launch import DNS1123, LaunchConfig, LaunchSpec, TrainingBackend
from components.tuning.engine import run_tuning, trial_name
from components.tuning.observations import Observations, extract_value, read_new_metrics
from components.tuning.params import ParamsError, merge_params
from components.tuning.results import StopReason, TuningResult
from components.tuning.samplers import TuningError, build_pruner, build_sampler
from components.tuning.spec import TuningSpec
from components.tuning.storage import default_storage_url, open_storage
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import SimulatedCrash
from tests.fakes.learning_curves import SimulatedBackend, SimulatedFailure


def make_spec(**overrides: Any) -> TuningSpec:
    d: dict[str, Any] = {
        "objective": {"type": "minimize", "objectiveMetricName": "val_loss"},
        "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
            {"name": "random_state", "value": "11"}, {"name": "n_startup_trials", "value": "4"}]},
        "parameters": [
            {"name": "lr", "parameterType": "double",
             "feasibleSpace": {"min": 1e-4, "max": 1.0, "distribution": "logUniform"}},
            {"name": "optimizer.name", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
        ],
        "parallelTrialCount": 2,
        "maxTrialCount": 8,
        "maxFailedTrialCount": 2,
    }
    d.update(overrides)
    return TuningSpec.parse(d)


def base_launch(out: Path, **trainer: Any) -> LaunchSpec:
    return LaunchSpec.parse({
        "name": "tune-demo", "trainer_config": {"epochs": 5, "optimizer": {"name": "adam", "momentum": 0.9}, **trainer},
        "data_uri": str(out / "data.parquet"), "output_uri": str(out / "runs"), "world_size": 1,
    })


def curve(cfg: dict[str, Any]) -> list[float]:
    """Loss curve: best near lr=0.01 with adam; len = cfg epochs."""
    final = 0.1 + 0.2 * (math.log10(cfg["lr"]) + 2) ** 2 + (0.05 if cfg["optimizer"]["name"] == "sgd" else 0.0)
    return [final + math.exp(-0.7 * e) for e in range(int(cfg.get("epochs", 5)))]


def study_of(spec: TuningSpec, base: LaunchSpec, attempt: int = 1) -> str:
    """The study name ``run_tuning`` derives: ``<launch name>-<spec digest>`` (``-a<N>`` from attempt 2)."""
    return f"{base.name}-{spec.digest()}" + (f"-a{attempt}" if attempt > 1 else "")


def names(spec: TuningSpec, base: LaunchSpec, numbers: range | list[int], attempt: int = 1) -> list[str]:
    return [trial_name(study_of(spec, base, attempt), n) for n in numbers]


def tune(tmp_path: Path, spec: TuningSpec, backend: TrainingBackend, sub: str = "a", *, sqlite: bool = False,
         storage: BaseStorage | None = None, clock: Clock | None = None, base: LaunchSpec | None = None,
         **kw: Any) -> TuningResult:
    """Run a study on a manual clock; in memory unless ``sqlite`` (the default storage, a few ms per write)."""
    out = tmp_path / sub
    if storage is None:
        storage = open_storage(default_storage_url(str(out))) if sqlite else optuna.storages.InMemoryStorage()
    result, _history = run_tuning(spec, base or base_launch(out), backend, storage=storage, storage_label="test",
                                  clock=clock or ManualClock().clock(), **kw)
    return result


# ---------------------------------------------------------------- samplers and pruner


def test_samplers_set_every_option_explicitly() -> None:
    tpe = build_sampler(make_spec())
    assert isinstance(tpe, TPESampler)
    # Optuna 5 turned multivariate and constant_liar on by default: Katib's "tpe" is the independent TPE
    assert tpe._multivariate is False and tpe._constant_liar is True and tpe._group is False
    assert tpe._n_startup_trials == 4 and tpe._n_ei_candidates == 24
    mv = build_sampler(make_spec(algorithm={"algorithmName": "multivariate-tpe",
                                            "algorithmSettings": [{"name": "n_ei_candidates", "value": "7"}]}))
    assert isinstance(mv, TPESampler)
    assert mv._multivariate is True and mv._n_ei_candidates == 7 and mv._n_startup_trials == 10
    assert isinstance(build_sampler(make_spec(algorithm={"algorithmName": "random"})), RandomSampler)
    grid_spec = make_spec(algorithm={"algorithmName": "grid"}, maxTrialCount=4, maxFailedTrialCount=1, parameters=[
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 0.2, "step": 0.1}},
        {"name": "o", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b"]}}])
    assert isinstance(build_sampler(grid_spec), GridSampler)


def test_cmaes_needs_its_package_and_rejects_ipop() -> None:
    params = [{"name": "a", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 1}},
              {"name": "b", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 9}}]
    spec = make_spec(algorithm={"algorithmName": "cmaes"}, parameters=params)
    if importlib.util.find_spec("cmaes") is None:
        with pytest.raises(TuningError, match="needs the 'cmaes' package"):
            build_sampler(spec)
    else:
        assert isinstance(build_sampler(spec), optuna.samplers.CmaEsSampler)
        ipop = make_spec(algorithm={"algorithmName": "cmaes", "algorithmSettings": [
            {"name": "restart_strategy", "value": "ipop"}]}, parameters=params)
        with pytest.raises(TuningError, match="ipop"):
            build_sampler(ipop)


def test_medianstop_maps_to_median_pruner() -> None:
    assert isinstance(build_pruner(make_spec()), NopPruner)
    pruner = build_pruner(make_spec(earlyStopping={"algorithmSettings": [
        {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]}))
    assert isinstance(pruner, MedianPruner)
    assert pruner._n_startup_trials == 3 and pruner._n_warmup_steps == 2 and pruner._interval_steps == 1


# ---------------------------------------------------------------- helpers


def test_trial_names_are_deterministic_dns_labels_distinct_per_study_attempt() -> None:
    first = trial_name("tune-demo-0123456789", 3)
    assert first == trial_name("tune-demo-0123456789", 3) and first.startswith("tune-trial-")
    assert first.endswith("-t3") and DNS1123.match(first) and len(first) <= 53
    assert trial_name("tune-demo-0123456789-a2", 3) != first  # a study attempt's trials are new jobs
    assert trial_name("tune-other-0123456789", 3) != first
    long = trial_name("a" * 128, 1234)
    assert len(long) <= 53 and long.endswith("-t1234") and DNS1123.match(long)
    assert DNS1123.match(trial_name("x" * 50 + "-ab", 10))  # no "--" left dangling


def test_merge_params_sets_nested_keys_without_touching_the_base() -> None:
    base: dict[str, Any] = {"epochs": 5, "optimizer": {"name": "adam", "momentum": 0.9}}
    merged = merge_params(base, {"optimizer.name": "sgd", "lr": 0.1, "sched.gamma": 0.5})
    assert merged == {"epochs": 5, "lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}, "sched": {"gamma": 0.5}}
    assert base["optimizer"]["name"] == "adam"
    with pytest.raises(ParamsError, match=r"trainer_config\.epochs is not a mapping"):
        merge_params(base, {"epochs.x": 1})


def test_read_new_metrics_is_incremental_and_waits_for_whole_lines(tmp_path: Path) -> None:
    obs = Observations()
    path = tmp_path / "metrics.jsonl"
    assert read_new_metrics(str(tmp_path), obs, "val_loss") == []
    path.write_text('{"epoch": 1, "val_loss": 0.9}\nnot json\n{"epoch": 2, "acc": 0.5}\n{"epoch": 3, "val_lo')
    assert read_new_metrics(str(tmp_path), obs, "val_loss") == [(1, 0.9)]
    with path.open("a") as fh:
        fh.write('ss": 0.7}\n{"epoch": 4, "val_loss": NaN}\n{"epoch": 5, "val_loss": 0.8}\n')
    assert read_new_metrics(str(tmp_path), obs, "val_loss") == [(3, 0.7), (5, 0.8)]
    assert read_new_metrics(str(tmp_path), obs, "val_loss") == []
    assert extract_value(obs, "min") == 0.7 and extract_value(obs, "max") == 0.9
    assert extract_value(obs, "latest") == 0.8 and extract_value(obs, "latest", final=0.75) == 0.75
    assert extract_value(Observations(), "min") is None


# ---------------------------------------------------------------- the study


def test_trials_run_through_the_backend_with_merged_configs(tmp_path: Path) -> None:
    backend = SimulatedBackend(curve)
    spec, base = make_spec(), base_launch(tmp_path / "a")
    result = tune(tmp_path, spec, backend, sqlite=True)
    assert result.stop_reason is StopReason.MAX_TRIALS and result.succeeded
    assert result.study_name == study_of(spec, base)
    assert backend.started == names(spec, base, range(8))
    assert backend.max_running == 2  # parallelTrialCount at a time
    for number, name in enumerate(backend.started):
        job = backend.jobs[name]
        row = result.trials.row(number, named=True)
        assert row["name"] == name and row["state"] == "Succeeded" and row["intermediate_count"] == 5
        cfg = job.spec.trainer_config
        assert cfg["lr"] == row["params_lr"] and cfg["optimizer"]["name"] == row["params_optimizer.name"]
        assert cfg["optimizer"]["momentum"] == 0.9 and cfg["epochs"] == 5
        assert job.spec.output_uri == str(tmp_path / "a" / "runs" / "trials" / name)
        assert row["value"] == pytest.approx(min(curve(cfg)))  # Katib's default strategy for minimize: min
    best = result.trials.sort("value").row(0, named=True)
    assert result.best_value == best["value"] and result.best_trial == best["name"]
    assert result.best_params == {"lr": best["params_lr"], "optimizer.name": best["params_optimizer.name"]}
    assert (tmp_path / "a" / "study.db").exists()


def test_fixed_seed_gives_the_same_trials(tmp_path: Path) -> None:
    spec = make_spec(maxTrialCount=10, earlyStopping={"algorithmSettings": [
        {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]})
    first = tune(tmp_path, spec, SimulatedBackend(curve), "a")
    again = tune(tmp_path, spec, SimulatedBackend(curve), "b")
    assert (first.trials["state"] == "EarlyStopped").sum() > 0  # pruning is part of what must repeat
    assert first.trials.equals(again.trials)
    assert first.best_params == again.best_params
    other_seed = make_spec(maxTrialCount=10, algorithm={"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "12"}, {"name": "n_startup_trials", "value": "4"}]})
    other = tune(tmp_path, other_seed, SimulatedBackend(curve), "c")
    assert other.trials["params_lr"].to_list() != first.trials["params_lr"].to_list()


def test_completion_order_follows_when_trials_finish(tmp_path: Path) -> None:
    spec = make_spec(
        algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
        parallelTrialCount=3, maxTrialCount=6, maxFailedTrialCount=0,
        parameters=[{"name": "epochs", "parameterType": "discrete", "feasibleSpace": {"list": [1, 3, 5, 7]}},
                    {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.001, "max": 0.1}}],
    )
    result = tune(tmp_path, spec, SimulatedBackend(curve))
    t = result.trials
    assert t.columns[:8] == ["number", "name", "state", "value", "intermediate_count", "duration_s",
                             "completion_order", "message"]
    assert sorted(t["completion_order"].to_list()) == list(range(1, 7))
    # the first poll (right after the start) sees the job running, then each poll (1 s apart) writes an epoch;
    # the poll that writes the last one sees it succeed
    assert t["duration_s"].to_list() == [float(e) for e in t["params_epochs"].to_list()]
    assert t["intermediate_count"].to_list() == t["params_epochs"].to_list()
    # replay the schedule: 3 slots, a trial starts when a slot frees, finishes its epochs later
    finish: dict[int, float] = {}
    slots = [0.0, 0.0, 0.0]
    for number, epochs in enumerate(t["params_epochs"].to_list()):
        start = min(slots)
        slots[slots.index(start)] = finish[number] = start + epochs
    expected = sorted(finish, key=lambda n: (finish[n], n))
    assert t.sort("completion_order")["number"].to_list() == expected
    assert expected != sorted(expected)  # the case is meaningful: completion order differs from start order


def test_max_failed_trial_count_is_honoured(tmp_path: Path) -> None:
    def always_fails(cfg: dict[str, Any]) -> list[float]:
        raise SimulatedFailure("CUDA out of memory", curve(cfg), epochs=2)

    backend = SimulatedBackend(always_fails)
    result = tune(tmp_path, make_spec(parallelTrialCount=1, maxFailedTrialCount=2), backend)
    assert result.stop_reason is StopReason.MAX_FAILED_TRIALS and not result.succeeded
    assert len(backend.started) == 3  # failed > maxFailedTrialCount stops at the third failure, as in Katib
    assert result.trials["state"].to_list() == ["Failed"] * 3
    assert result.trials["message"].to_list() == ["CUDA out of memory"] * 3
    assert result.best_params is None and result.best() is None

    zero = SimulatedBackend(always_fails)
    assert tune(tmp_path, make_spec(maxFailedTrialCount=0), zero, "b").stop_reason is StopReason.MAX_FAILED_TRIALS
    assert len(zero.started) == 2  # both parallel slots were filled before the first failure


def test_failures_within_the_limit_do_not_stop_the_study(tmp_path: Path) -> None:
    calls = itertools.count()

    def every_third_fails(cfg: dict[str, Any]) -> list[float]:
        if next(calls) % 3 == 2:
            raise SimulatedFailure("flaky node", epochs=0)
        return curve(cfg)

    backend = SimulatedBackend(every_third_fails)
    result = tune(tmp_path, make_spec(maxTrialCount=9, maxFailedTrialCount=3), backend)
    assert result.stop_reason is StopReason.MAX_TRIALS and result.succeeded
    assert result.counts() == {"Succeeded": 6, "Failed": 3, "EarlyStopped": 0, "Killed": 0}


def test_a_trial_that_cannot_start_or_reports_nothing_fails(tmp_path: Path) -> None:
    class Flaky(SimulatedBackend):
        def create(self, spec: LaunchSpec) -> RunningJob:
            if spec.name.endswith("-t1"):
                raise RuntimeError("quota exceeded")
            return super().create(spec)

    result = tune(tmp_path, make_spec(maxTrialCount=3), Flaky(curve))
    assert result.trials["state"].to_list() == ["Succeeded", "Failed", "Succeeded"]
    assert "could not start: RuntimeError: quota exceeded" in result.trials["message"][1]

    silent = SimulatedBackend(curve, metric="accuracy")  # writes another metric than the objective
    result = tune(tmp_path, make_spec(maxTrialCount=2, maxFailedTrialCount=2), silent, "b")
    assert result.trials["state"].to_list() == ["Failed", "Failed"]
    assert "reported no 'val_loss'" in result.trials["message"][0]


def _scripted(plan: list[tuple[str, int, float]]) -> SimulatedBackend:
    """Trials in start order: ("ok"|"fail", epochs, final value)."""
    calls = itertools.count()

    def objective(_cfg: dict[str, Any]) -> list[float]:
        kind, epochs, value = plan[next(calls)]
        values = [value + 1.0 / (e + 1) for e in range(epochs - 1)] + [value]
        if kind == "fail":
            raise SimulatedFailure("failed", values, epochs=epochs)
        return values

    return SimulatedBackend(objective)


def test_stop_order_goal_before_failed_limit_before_budget(tmp_path: Path) -> None:
    goal = {"type": "minimize", "goal": 0.2, "objectiveMetricName": "val_loss"}
    # same poll: trial 0 reaches the goal while trial 1 exceeds the failed limit -> goal wins
    r = tune(tmp_path, make_spec(objective=goal, maxFailedTrialCount=0),
             _scripted([("ok", 2, 0.1), ("fail", 2, 0.0)]), "a")
    assert r.stop_reason is StopReason.GOAL_REACHED and r.succeeded
    assert r.trials["state"].to_list() == ["Succeeded", "Failed"]  # both ended in that one round of polls
    # same poll: the budget is used up while the failed limit is exceeded -> failed wins
    r = tune(tmp_path, make_spec(maxTrialCount=2, maxFailedTrialCount=0),
             _scripted([("ok", 2, 0.5), ("fail", 2, 0.0)]), "b")
    assert r.stop_reason is StopReason.MAX_FAILED_TRIALS and not r.succeeded
    # goal missed, no failures -> budget
    r = tune(tmp_path, make_spec(objective=goal, maxTrialCount=2), _scripted([("ok", 2, 0.5), ("ok", 3, 0.4)]), "c")
    assert r.stop_reason is StopReason.MAX_TRIALS and r.best_value == 0.4


def test_reaching_the_goal_kills_running_trials(tmp_path: Path) -> None:
    goal = {"type": "maximize", "goal": 0.9, "objectiveMetricName": "val_loss",
            "metricStrategies": [{"name": "val_loss", "value": "latest"}]}
    backend = _scripted([("ok", 8, 0.5), ("ok", 2, 0.95), ("ok", 8, 0.5), ("ok", 2, 0.5)])
    spec = make_spec(objective=goal, parallelTrialCount=3)
    r = tune(tmp_path, spec, backend)
    assert r.stop_reason is StopReason.GOAL_REACHED
    assert r.trials["state"].to_list() == ["Killed", "Succeeded", "Killed"]
    assert backend.cancelled == names(spec, base_launch(tmp_path / "a"), [0, 2])
    assert "experiment stopped: ExperimentGoalReached" in r.trials["message"][0]
    assert r.best_value == 0.95  # latest, although an earlier epoch reported 1.95


def test_median_stop_prunes_and_cancels_laggards(tmp_path: Path) -> None:
    spec = make_spec(
        algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "5"}]},
        parallelTrialCount=1, maxTrialCount=12, maxFailedTrialCount=0,
        earlyStopping={"algorithmSettings": [{"name": "min_trials_required", "value": "3"},
                                             {"name": "start_step", "value": "3"}]},
    )
    base = base_launch(tmp_path / "a", epochs=10)
    backend = SimulatedBackend(curve)
    r = tune(tmp_path, spec, backend, base=base)
    t = r.trials
    stopped = t.filter(t["state"] == "EarlyStopped")
    assert stopped.height >= 3
    assert t["state"][:3].to_list() == ["Succeeded"] * 3  # nothing is pruned before min_trials_required
    assert set(stopped["intermediate_count"].to_list()) <= set(range(3, 10))  # nor before start_step
    assert sorted(backend.cancelled) == sorted(stopped["name"].to_list())
    assert backend.epochs_run == t["intermediate_count"].sum() < 12 * 10
    assert all("median stop at step" in m for m in stopped["message"].to_list())
    # the best trial ran to the end
    assert t.filter(t["name"] == r.best_trial)["intermediate_count"].item() == 10


class Wrapped(RunningJob):
    """A job whose status reads go through ``hook`` first (to interrupt the step at a chosen poll)."""

    def __init__(self, job: RunningJob, hook: Any) -> None:
        self.job, self.hook, self.name, self.attempt = job, hook, job.name, job.attempt

    @property
    def policy(self) -> WaitPolicy:
        return self.job.policy

    def status(self) -> JobStatus:
        self.hook()
        return self.job.status()

    def cancel(self) -> None:
        self.job.cancel()

    def logs(self) -> str:
        return self.job.logs()


def test_interrupt_cancels_running_trials_and_records_them(tmp_path: Path) -> None:
    class Interrupting(SimulatedBackend):
        polls = 0

        def create(self, spec: LaunchSpec) -> RunningJob:
            return Wrapped(super().create(spec), self.poll)

        def poll(self) -> None:
            self.polls += 1
            if self.polls == 5:
                raise KeyboardInterrupt

    spec = make_spec()
    backend = Interrupting(curve)
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(KeyboardInterrupt):
        tune(tmp_path, spec, backend, storage=storage, study_name="s")
    assert sorted(backend.cancelled) == [trial_name("s", 0), trial_name("s", 1)]  # a given study name is kept
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs["result"]["state"] for t in trials} == {"Killed"}
    assert {t.user_attrs["result"]["message"] for t in trials} == {"tuning step interrupted"}


def test_a_crashed_step_leaves_trials_running_and_the_retry_adopts_them(tmp_path: Path) -> None:
    spec = make_spec(maxTrialCount=4)
    base = base_launch(tmp_path / "a")
    storage = open_storage(default_storage_url(str(tmp_path / "a")))  # the retry finds the same study on disk
    backend = SimulatedBackend(curve)  # the platform: jobs outlive the step that started them

    def evicted(n: int) -> None:
        if n == 4:  # sleeps: 0 s after the starts, then 1 s per poll; the crash comes before the 3rd poll
            raise SimulatedCrash("step pod evicted")

    with pytest.raises(SimulatedCrash):
        tune(tmp_path, spec, backend, storage=storage, clock=ManualClock(evicted).clock())
    study = optuna.load_study(study_name=study_of(spec, base), storage=storage)
    assert [t.state for t in study.get_trials()] == [TrialState.RUNNING] * 2 and backend.cancelled == []
    reported_before = {t.number: dict(t.intermediate_values) for t in study.get_trials()}
    assert all(len(v) == 2 for v in reported_before.values())  # two epochs each before the crash

    result = tune(tmp_path, spec, backend, storage=storage)
    assert backend.started == names(spec, base, range(4))  # trials 0 and 1 adopted, never started twice
    assert result.trials["state"].to_list() == ["Succeeded"] * 4
    assert result.trials["intermediate_count"].to_list() == [5] * 4  # reported before and after adoption alike
    assert sorted(result.trials["completion_order"].to_list()) == [1, 2, 3, 4]
    finished = optuna.load_study(study_name=study_of(spec, base), storage=storage).get_trials()
    for number, values in reported_before.items():
        assert values.items() <= finished[number].intermediate_values.items()


def test_a_resumed_seeded_study_does_not_repeat_its_suggestions(tmp_path: Path) -> None:
    spec = make_spec(algorithm={"algorithmName": "random", "algorithmSettings": [
        {"name": "random_state", "value": "3"}]}, parallelTrialCount=1, maxTrialCount=6)

    class TerminatedOnFourthStart(SimulatedBackend):
        def create(self, spec: LaunchSpec) -> RunningJob:
            if len(self.started) == 3:
                raise Terminated()
            return super().create(spec)

    def resumed() -> list[tuple[float, str]]:
        storage = optuna.storages.InMemoryStorage()
        with pytest.raises(Terminated):
            tune(tmp_path, spec, TerminatedOnFourthStart(curve), storage=storage)
        result = tune(tmp_path, spec, SimulatedBackend(curve), storage=storage)
        return list(zip(result.trials["params_lr"], result.trials["params_optimizer.name"], strict=True))

    params = resumed()
    assert len(params) == 6 and len(set(params)) == 6  # the resumed run's trials 4 and 5 are new points
    assert resumed() == params  # and still a function of the seed and the history
    fresh = tune(tmp_path, spec, SimulatedBackend(curve))
    assert fresh.trials["params_lr"].to_list()[:4] == [p[0] for p in params[:4]]  # the first run as without resume


def test_a_crashed_step_cancels_the_trials_whose_jobs_cannot_outlive_it(tmp_path: Path) -> None:
    class ProcessLike(SimulatedBackend):  # jobs only this process knows, as local torchrun processes
        def create(self, spec: LaunchSpec) -> RunningJob:
            job = super().create(spec)
            job.outlives_step = False
            return job

    backend = ProcessLike(curve)
    storage = optuna.storages.InMemoryStorage()
    crash = ManualClock(lambda n: (_ for _ in ()).throw(SimulatedCrash("out of disk")) if n == 3 else None)
    with pytest.raises(SimulatedCrash):
        tune(tmp_path, make_spec(), backend, storage=storage, clock=crash.clock(), study_name="s")
    assert sorted(backend.cancelled) == sorted(backend.started) and len(backend.started) == 2
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.user_attrs["result"]["state"] for t in trials] == ["Killed", "Killed"]


def test_a_study_that_ended_in_failure_is_retried_as_its_next_attempt(tmp_path: Path) -> None:
    spec, base = make_spec(maxTrialCount=4, maxFailedTrialCount=1), base_launch(tmp_path / "a")
    storage = optuna.storages.InMemoryStorage()  # the storage both runs share
    broken = {"on": True}

    def objective(cfg: dict[str, Any]) -> list[float]:
        if broken["on"]:
            raise SimulatedFailure("node pool out of memory", epochs=1, curve=[1.0])
        return curve(cfg)

    backend = SimulatedBackend(objective)
    failed, history = run_tuning(spec, base, backend, storage=storage, storage_label="test",
                                 clock=ManualClock().clock())
    assert failed.stop_reason is StopReason.MAX_FAILED_TRIALS and history == []
    assert backend.started == names(spec, base, range(2))

    broken["on"] = False  # the cause is fixed; KFP retries the step with the same storage
    result, history = run_tuning(spec, base, backend, storage=storage, storage_label="test",
                                 clock=ManualClock().clock())
    assert result.succeeded and result.study_name == study_of(spec, base, 2)
    assert history == [f"study attempt 1 {study_of(spec, base)}: ended ExperimentMaxFailedTrialsReached; "
                       "starting the next attempt"]
    assert backend.started[2:] == names(spec, base, range(4), attempt=2)  # new jobs, new names
    assert result.trials["state"].to_list() == ["Succeeded"] * 4

    # a third run finds a study that succeeded: resumed, nothing runs again
    again, history = run_tuning(spec, base, backend, storage=storage, storage_label="test",
                                clock=ManualClock().clock())
    assert history == [history[0], f"study attempt 2 {study_of(spec, base, 2)}: resumed "
                                   "(last stop: ExperimentMaxTrialsReached)"]
    assert len(backend.started) == 6 and again.trials.equals(result.trials)


def test_a_study_that_spent_its_budget_without_a_successful_trial_is_retried_as_its_next_attempt(
        tmp_path: Path) -> None:
    spec, base = make_spec(maxTrialCount=2, maxFailedTrialCount=2), base_launch(tmp_path / "a")
    storage = optuna.storages.InMemoryStorage()
    broken = {"on": True}

    def objective(cfg: dict[str, Any]) -> list[float]:
        if broken["on"]:
            raise SimulatedFailure("bad image", epochs=0)
        return curve(cfg)

    backend = SimulatedBackend(objective)
    failed, _ = run_tuning(spec, base, backend, storage=storage, storage_label="test", clock=ManualClock().clock())
    assert failed.stop_reason is StopReason.MAX_TRIALS and not failed.succeeded  # within the failed limit
    broken["on"] = False
    result, history = run_tuning(spec, base, backend, storage=storage, storage_label="test",
                                 clock=ManualClock().clock())
    assert result.succeeded and result.study_name == study_of(spec, base, 2)
    assert history == [f"study attempt 1 {study_of(spec, base)}: ended ExperimentMaxTrialsReached with no "
                       "successful trial; starting the next attempt"]
    assert backend.started == names(spec, base, range(2)) + names(spec, base, range(2), attempt=2)


def test_parameters_that_do_not_fit_the_trainer_config_fail_before_any_trial(tmp_path: Path) -> None:
    spec = make_spec(parameters=[{"name": "epochs.warmup", "parameterType": "int",
                                  "feasibleSpace": {"min": 1, "max": 3}}])
    backend = SimulatedBackend(curve)
    with pytest.raises(TuningError, match="do not fit the base trainer_config"):
        tune(tmp_path, spec, backend)
    assert backend.started == []


class Stuck(RunningJob):
    def __init__(self, name: str, deadline_s: float) -> None:
        self.name, self.cancelled = name, False
        self._policy = WaitPolicy(poll_interval_s=10, deadline_s=deadline_s)

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        return JobStatus(JobPhase.CANCELLED if self.cancelled else JobPhase.RUNNING)

    def cancel(self) -> None:
        self.cancelled = True

    def logs(self) -> str:
        return ""


class StuckBackend(TrainingBackend):
    def __init__(self) -> None:
        self.jobs: list[Stuck] = []

    @classmethod
    def from_config(cls, cfg: LaunchConfig, **kw: Any) -> Self:
        raise NotImplementedError

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        return [j for j in self.jobs if j.name == spec.name]

    def create(self, spec: LaunchSpec) -> RunningJob:
        self.jobs.append(Stuck(spec.name, spec.timeout_s))
        return self.jobs[-1]


def test_trial_deadline_fails_a_stuck_trial(tmp_path: Path) -> None:
    base = base_launch(tmp_path / "a").model_copy(update={"timeout_s": 30})
    backend = StuckBackend()
    r = tune(tmp_path, make_spec(maxTrialCount=2, maxFailedTrialCount=2), backend, base=base)
    assert r.trials["state"].to_list() == ["Failed", "Failed"]
    assert all(j.cancelled for j in backend.jobs) and len(backend.jobs) == 2
    assert "did not finish within 30s (last phase Running) and was cancelled" in r.trials["message"][0]
    assert r.trials["duration_s"].to_list() == [30.0, 30.0]


def test_the_study_deadline_kills_running_trials_and_counts_as_a_failure(tmp_path: Path) -> None:
    backend = SimulatedBackend(lambda cfg: [1.0] * 100)
    r = tune(tmp_path, make_spec(), backend, timeout_s=10)
    assert r.stop_reason is StopReason.DEADLINE and not r.succeeded
    assert r.trials["state"].to_list() == ["Killed", "Killed"] and sorted(backend.cancelled) == backend.started
    assert r.trials["duration_s"].to_list() == [10.0, 10.0]


# ---------------------------------------------------------------- real processes, real time

TRIAL_SCRIPT = r"""
import json, os, sys, time
cfg, out = json.loads(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
pause = 0.4 if cfg["speed"] == "slow" else 0.02
for epoch in range(1, cfg["epochs"] + 1):
    time.sleep(pause)
    with open(os.path.join(out, "metrics.jsonl"), "a") as fh:
        fh.write(json.dumps({"epoch": epoch, "val_loss": (1.0 if cfg["speed"] == "slow" else 2.0) / epoch}) + "\n")
"""


class ProcessJob(RunningJob):
    def __init__(self, name: str, proc: subprocess.Popen[bytes], backend: ProcessBackend) -> None:
        self.name, self.proc, self.backend = name, proc, backend

    @property
    def policy(self) -> WaitPolicy:
        return WaitPolicy(poll_interval_s=0.05, deadline_s=60)

    def status(self) -> JobStatus:
        code = self.proc.poll()
        if code is None:
            return JobStatus(JobPhase.RUNNING)
        self.backend.ended[self.name] = self.backend.ended.get(self.name, time.monotonic())
        return JobStatus(JobPhase.SUCCEEDED if code == 0 else JobPhase.FAILED, f"exit {code}")

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def logs(self) -> str:
        return ""


class ProcessBackend(TrainingBackend):
    """Each trial is a Python subprocess that writes metrics.jsonl per the launch contract."""

    def __init__(self) -> None:
        self.jobs: dict[str, ProcessJob] = {}
        self.begun: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    @classmethod
    def from_config(cls, cfg: LaunchConfig, **kw: Any) -> Self:
        raise NotImplementedError

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        return [self.jobs[spec.name]] if spec.name in self.jobs else []

    def create(self, spec: LaunchSpec) -> RunningJob:
        proc = subprocess.Popen([sys.executable, "-c", TRIAL_SCRIPT, json.dumps(spec.trainer_config),
                                 local_path(spec.output_uri)], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        self.jobs[spec.name] = ProcessJob(spec.name, proc, self)
        self.begun[spec.name] = time.monotonic()
        return self.jobs[spec.name]


@pytest.mark.slow
def test_parallel_subprocess_trials_complete_in_real_finishing_order(tmp_path: Path) -> None:
    spec = make_spec(
        algorithm={"algorithmName": "grid", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
        parallelTrialCount=2, maxTrialCount=2, maxFailedTrialCount=0,
        parameters=[{"name": "speed", "parameterType": "categorical", "feasibleSpace": {"list": ["slow", "fast"]}}],
    )
    backend = ProcessBackend()
    r, _ = run_tuning(spec, base_launch(tmp_path, epochs=3), backend, storage=optuna.storages.InMemoryStorage(),
                      storage_label="memory")  # the real clock
    t = r.trials
    assert t["state"].to_list() == ["Succeeded", "Succeeded"]
    by_speed = {row["params_speed"]: row for row in t.iter_rows(named=True)}
    assert by_speed["fast"]["completion_order"] == 1 and by_speed["slow"]["completion_order"] == 2
    assert by_speed["slow"]["duration_s"] > by_speed["fast"]["duration_s"] + 0.5
    assert by_speed["slow"]["value"] == pytest.approx(1.0 / 3) and r.best_params == {"speed": "slow"}
    assert max(backend.begun.values()) < min(backend.ended.values())  # both ran at the same time
