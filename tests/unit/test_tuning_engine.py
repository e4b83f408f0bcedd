"""The Optuna engine: trials through a TrainingBackend, parallelism, pruning, Katib's stop order, determinism."""

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
from typing import Any

import optuna
import pytest
from optuna.pruners import MedianPruner, NopPruner
from optuna.samplers import GridSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from components._core.artifacts import local_path
from components._core.waiting import ManualClock
from components.training.launch import DNS1123, JobPhase, JobStatus, LaunchSpec, RunningJob, TrainingBackend
from components.tuning.optuna_engine import (
    StopReason,
    TuningError,
    _Observations,
    build_pruner,
    build_sampler,
    extract_value,
    read_new_metrics,
    run_tuning,
    trial_name,
)
from components.tuning.params import ParamsError, merge_params
from components.tuning.simulate import SimulatedBackend, SimulatedFailure
from components.tuning.spec import TuningSpec


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


def base_launch(tmp_path: Path, **trainer: Any) -> LaunchSpec:
    return LaunchSpec.parse({
        "name": "tune-demo", "trainer_config": {"epochs": 5, "optimizer": {"name": "adam", "momentum": 0.9}, **trainer},
        "data_uri": str(tmp_path / "data.parquet"), "output_uri": str(tmp_path / "runs"), "world_size": 1,
    })


def curve(cfg: dict[str, Any]) -> list[float]:
    """Loss curve: best near lr=0.01 with adam; len = cfg epochs."""
    final = 0.1 + 0.2 * (math.log10(cfg["lr"]) + 2) ** 2 + (0.05 if cfg["optimizer"]["name"] == "sgd" else 0.0)
    return [final + math.exp(-0.7 * e) for e in range(int(cfg.get("epochs", 5)))]


def tune(tmp_path: Path, spec: TuningSpec, backend: TrainingBackend, sub: str = "a", *, sqlite: bool = False,
         **kw: Any) -> Any:
    """Run a study on a fake clock; in memory unless ``sqlite`` (the default storage, a few ms per write)."""
    out = tmp_path / sub
    if not sqlite:
        kw.setdefault("storage", optuna.storages.InMemoryStorage())
    kw.setdefault("poll_interval_s", 1.0)
    kw.setdefault("clock", ManualClock().clock())
    return run_tuning(spec, kw.pop("base", base_launch(out)), backend, output_dir=str(out), **kw)


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


def test_trial_names_are_deterministic_dns_labels() -> None:
    assert trial_name("tune-demo", 3) == "tune-demo-t3"
    long = trial_name("a" * 53, 1234)
    assert len(long) == 53 and long.endswith("-t1234") and DNS1123.match(long)
    assert DNS1123.match(trial_name("x" * 50 + "-ab", 10))  # no "--" left dangling


def test_merge_params_sets_nested_keys_without_touching_the_base() -> None:
    base: dict[str, Any] = {"epochs": 5, "optimizer": {"name": "adam", "momentum": 0.9}}
    merged = merge_params(base, {"optimizer.name": "sgd", "lr": 0.1, "sched.gamma": 0.5})
    assert merged == {"epochs": 5, "lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9}, "sched": {"gamma": 0.5}}
    assert base["optimizer"]["name"] == "adam"
    with pytest.raises(ParamsError, match=r"trainer_config\.epochs is not a mapping"):
        merge_params(base, {"epochs.x": 1})


def test_read_new_metrics_is_incremental_and_waits_for_whole_lines(tmp_path: Path) -> None:
    obs = _Observations()
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
    assert extract_value(_Observations(), "min") is None


# ---------------------------------------------------------------- the study


def test_trials_run_through_the_backend_with_merged_configs(tmp_path: Path) -> None:
    backend = SimulatedBackend(curve)
    result = tune(tmp_path, make_spec(), backend, sqlite=True)
    assert result.stop_reason is StopReason.MAX_TRIALS and result.succeeded
    assert backend.started == [f"tune-demo-t{i}" for i in range(8)]
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
    # a job takes one poll to start running, then one epoch per poll
    assert t["duration_s"].to_list() == [float(e + 1) for e in t["params_epochs"].to_list()]
    assert t["intermediate_count"].to_list() == t["params_epochs"].to_list()
    # replay the schedule: 3 slots, a trial starts when a slot frees, finishes epochs + 1 polls later
    finish: dict[int, float] = {}
    slots = [0.0, 0.0, 0.0]
    for number, epochs in enumerate(t["params_epochs"].to_list()):
        start = min(slots)
        slots[slots.index(start)] = finish[number] = start + epochs + 1
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
        def start(self, spec: LaunchSpec) -> RunningJob:
            if spec.name.endswith("-t1"):
                raise RuntimeError("quota exceeded")
            return super().start(spec)

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
    r = tune(tmp_path, make_spec(objective=goal, parallelTrialCount=3), backend)
    assert r.stop_reason is StopReason.GOAL_REACHED
    assert r.trials["state"].to_list() == ["Killed", "Succeeded", "Killed"]
    assert backend.cancelled == ["tune-demo-t0", "tune-demo-t2"]
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


def test_interrupt_cancels_running_trials_and_records_them(tmp_path: Path) -> None:
    class Interrupting(SimulatedBackend):
        polls = 0

        def start(self, spec: LaunchSpec) -> RunningJob:
            job = super().start(spec)
            outer = self

            class Wrapped(RunningJob):
                name = job.name

                def status(self) -> JobStatus:
                    outer.polls += 1
                    if outer.polls == 5:
                        raise KeyboardInterrupt
                    return job.status()

                def cancel(self) -> None:
                    job.cancel()

                def logs(self) -> str:
                    return job.logs()

            return Wrapped()

    backend = Interrupting(curve)
    storage = optuna.storages.InMemoryStorage()
    with pytest.raises(KeyboardInterrupt):
        tune(tmp_path, make_spec(), backend, storage=storage, study_name="s")
    assert sorted(backend.cancelled) == ["tune-demo-t0", "tune-demo-t1"]
    trials = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    assert {t.user_attrs["result"]["state"] for t in trials} == {"Killed"}


def test_a_retried_step_resumes_the_study_and_adopts_running_trials(tmp_path: Path) -> None:
    spec = make_spec(maxTrialCount=4)
    out = tmp_path / "a"
    base = base_launch(out)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # a previous attempt died with trial 0 finished and trial 1 still running
    study = optuna.create_study(storage=url, study_name="resume", direction="minimize")
    from components.tuning.optuna_engine import distributions

    t0 = study.ask(distributions(spec))
    t0.set_user_attr("trial", {"name": "tune-demo-t0", "output_uri": "x"})
    t0.set_user_attr("result", {"state": "Succeeded", "completion_order": 1, "duration_s": 1.0, "message": "",
                                "value": 0.5})
    study.tell(t0, 0.5)
    t1 = study.ask(distributions(spec))
    t1.report(3.0, 1)
    backend = SimulatedBackend(curve)
    # the job of trial 1 is still running on the cluster: the backend knows it and adopts it by name
    running = backend.start(LaunchSpec.parse({**base.model_dump(), "name": "tune-demo-t1", "output_uri": str(
        out / "runs" / "trials" / "tune-demo-t1"), "trainer_config": merge_params(base.trainer_config, t1.params)}))
    running.status()
    result = run_tuning(spec, base, backend, output_dir=str(out), storage_url=url, study_name="resume",
                        clock=ManualClock().clock(), poll_interval_s=1.0)
    assert result.trials["name"].to_list() == [f"tune-demo-t{i}" for i in range(4)]
    assert backend.started == ["tune-demo-t1", "tune-demo-t2", "tune-demo-t3"]  # t1 adopted, not restarted
    assert result.trials["state"].to_list() == ["Succeeded"] * 4
    assert result.trials["intermediate_count"][1] == 5  # step 1 was reported before, the rest after adoption
    assert result.trials["completion_order"][0] == 1 and sorted(result.trials["completion_order"]) == [1, 2, 3, 4]


def test_parameters_that_do_not_fit_the_trainer_config_fail_before_any_trial(tmp_path: Path) -> None:
    spec = make_spec(parameters=[{"name": "epochs.warmup", "parameterType": "int",
                                  "feasibleSpace": {"min": 1, "max": 3}}])
    backend = SimulatedBackend(curve)
    with pytest.raises(TuningError, match="do not fit the base trainer_config"):
        tune(tmp_path, spec, backend)
    assert backend.started == []


def test_trial_deadline_fails_a_stuck_trial(tmp_path: Path) -> None:
    class Stuck(RunningJob):
        name = "stuck"
        cancelled = False

        def status(self) -> JobStatus:
            return JobStatus(JobPhase.CANCELLED if self.cancelled else JobPhase.RUNNING)

        def cancel(self) -> None:
            self.cancelled = True

        def logs(self) -> str:
            return ""

    class StuckBackend(TrainingBackend):
        def __init__(self) -> None:
            self.jobs: list[Stuck] = []

        def start(self, spec: LaunchSpec) -> RunningJob:
            self.jobs.append(Stuck())
            return self.jobs[-1]

    base = LaunchSpec.parse({**base_launch(tmp_path / "a").model_dump(), "timeout_s": 30})
    backend = StuckBackend()
    r = tune(tmp_path, make_spec(maxTrialCount=2, maxFailedTrialCount=2), backend, base=base, poll_interval_s=10)
    assert r.trials["state"].to_list() == ["Failed", "Failed"]
    assert all(j.cancelled for j in backend.jobs)
    assert "deadline of 30s exceeded" in r.trials["message"][0]
    assert r.trials["duration_s"].to_list() == [40.0, 40.0]


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

    def start(self, spec: LaunchSpec) -> RunningJob:
        proc = subprocess.Popen([sys.executable, "-c", TRIAL_SCRIPT, json.dumps(spec.trainer_config),
                                 local_path(spec.output_uri)], env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        self.jobs[spec.name] = ProcessJob(spec.name, proc, self)
        self.begun[spec.name] = time.monotonic()
        return self.jobs[spec.name]


def test_parallel_subprocess_trials_complete_in_real_finishing_order(tmp_path: Path) -> None:
    spec = make_spec(
        algorithm={"algorithmName": "grid", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
        parallelTrialCount=2, maxTrialCount=2, maxFailedTrialCount=0,
        parameters=[{"name": "speed", "parameterType": "categorical", "feasibleSpace": {"list": ["slow", "fast"]}}],
    )
    backend = ProcessBackend()
    r = run_tuning(spec, base_launch(tmp_path, epochs=3), backend, output_dir=str(tmp_path), poll_interval_s=0.05)
    t = r.trials
    assert t["state"].to_list() == ["Succeeded", "Succeeded"]
    by_speed = {row["params_speed"]: row for row in t.iter_rows(named=True)}
    assert by_speed["fast"]["completion_order"] == 1 and by_speed["slow"]["completion_order"] == 2
    assert by_speed["slow"]["duration_s"] > by_speed["fast"]["duration_s"] + 0.5
    assert by_speed["slow"]["value"] == pytest.approx(1.0 / 3) and r.best_params == {"speed": "slow"}
    assert max(backend.begun.values()) < min(backend.ended.values())  # both ran at the same time
