"""Tuning outputs: trials table, typed best parameters, offline optimization history, and the step's run logic."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import pytest

from components._core.config import ConfigError
from components._core.signals import on_sigterm
from components._core.waiting import Clock, ManualClock
from components.training.launch import LaunchSpec
from components.tuning.optuna_engine import StopReason, TuningResult, run_tuning
from components.tuning.params import BestParams
from components.tuning.report import history_html, write_reports, write_trials_table
from components.tuning.run import StorageConfig, TuningFailed, resolve_storage_url, run_step
from components.tuning.simulate import SimulatedBackend, SimulatedFailure


def clock() -> Clock:
    return ManualClock().clock()


SPEC: dict[str, Any] = {
    "objective": {"type": "maximize", "objectiveMetricName": "val_accuracy"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "2"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": 0.001, "max": 0.1}},
        {"name": "hidden", "parameterType": "int", "feasibleSpace": {"min": 8, "max": 64}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [16, 32]}},
        {"name": "optimizer.name", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 6, "maxFailedTrialCount": 1,
    "earlyStopping": {"algorithmSettings": [{"name": "min_trials_required", "value": "2"},
                                            {"name": "start_step", "value": "2"}]},
}


def accuracy(cfg: dict[str, Any]) -> list[float]:
    top = 0.95 - abs(math.log10(cfg["lr"]) + 2) * 0.2 - (0.05 if cfg["optimizer"]["name"] == "sgd" else 0.0)
    return [top * (1 - math.exp(-0.8 * (e + 1))) for e in range(6)]


def base(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec.parse({"name": "tune-report", "trainer_config": {"epochs": 6, "optimizer": {"name": "adam"}},
                             "data_uri": "unused", "output_uri": str(tmp_path / "runs"), "world_size": 1})


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> TuningResult:
    tmp = tmp_path_factory.mktemp("study")
    return run_tuning(SPEC, base(tmp), SimulatedBackend(accuracy, metric="val_accuracy"), output_dir=str(tmp),
                      storage=optuna.storages.InMemoryStorage(), clock=clock(), poll_interval_s=1)


def test_trials_table_round_trips_as_csv_and_parquet(result: TuningResult, tmp_path: Path) -> None:
    assert write_trials_table(result, str(tmp_path / "t.csv")) == 6
    assert write_trials_table(result, str(tmp_path / "t.parquet")) == 6
    parquet = pl.read_parquet(tmp_path / "t.parquet")
    assert parquet.equals(result.trials)
    assert parquet.schema["params_hidden"] == pl.Int64 and parquet.schema["params_batch_size"] == pl.Int64
    assert parquet.schema["params_lr"] == pl.Float64 and parquet.schema["params_optimizer.name"] == pl.String
    csv = pl.read_csv(tmp_path / "t.csv")
    assert csv["name"].to_list() == [f"tune-report-t{i}" for i in range(6)]
    assert csv["state"].to_list() == result.trials["state"].to_list()
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_trials_table(result, str(tmp_path / "t.jsonl"))


def test_best_params_are_a_typed_output_the_training_step_applies(result: TuningResult, tmp_path: Path) -> None:
    paths = write_reports(result, str(tmp_path), renderer="svg")
    best = BestParams.parse(json.loads(Path(paths["best_params"]).read_text()))
    best_row = result.trials.filter(pl.col("state") == "Succeeded").sort("value", descending=True).row(0, named=True)
    assert best.value == best_row["value"] and best.trial_name == best_row["name"]
    assert best.direction == "maximize" and best.objective_metric_name == "val_accuracy"
    assert best.params == {"lr": best_row["params_lr"], "hidden": best_row["params_hidden"],
                           "batch_size": best_row["params_batch_size"],
                           "optimizer.name": best_row["params_optimizer.name"]}
    assert isinstance(best.params["hidden"], int) and isinstance(best.params["batch_size"], int)
    trainer = best.apply({"epochs": 6, "optimizer": {"name": "adam", "momentum": 0.9}})
    assert trainer["optimizer"] == {"name": best.params["optimizer.name"], "momentum": 0.9}
    assert trainer["lr"] == best.params["lr"] and trainer["epochs"] == 6
    summary = json.loads(Path(paths["summary"]).read_text())
    assert summary["stop_reason"] == "ExperimentMaxTrialsReached" and summary["best_params"] == best.params
    with pytest.raises(ConfigError, match=r"BestParams\.value"):
        BestParams.parse({**best.model_dump(), "value": "nan"})


def _offline(page: str) -> None:
    """No tag loads anything from elsewhere (plotly.js itself mentions map-tile URLs it never loads here)."""
    assert not re.search(r"""<(script|link|img|iframe|object|embed)[^>]+(src|href|data)=""", page, re.I)


def test_svg_history_renders_offline_and_shows_every_finished_trial(result: TuningResult) -> None:
    page = history_html(result, renderer="svg")
    _offline(page)
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]
    assert page.count("<circle") == result.trials.filter(pl.col("value").is_not_null()).height
    assert page.count('fill="none" stroke="#1f77b4"') == (result.trials["state"] == "EarlyStopped").sum()
    assert "<path d=\"M" in page and "val_accuracy" in page and result.study_name in page
    assert history_html(result, renderer="svg") == page  # deterministic


@pytest.mark.skipif(importlib.util.find_spec("plotly") is None, reason="plotly not installed")
def test_plotly_history_inlines_plotly_js(result: TuningResult) -> None:
    page = history_html(result, renderer="plotly")
    _offline(page)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js is inlined, not fetched
    assert history_html(result, renderer="auto")[:200] == page[:200]


def test_storage_url_resolution_keeps_passwords_out_of_parameters(tmp_path: Path) -> None:
    assert resolve_storage_url(StorageConfig(), str(tmp_path)) == f"sqlite:///{tmp_path}/study.db"
    pg = StorageConfig(url="postgresql+psycopg://tuner@db.ns.svc:5432/optuna")
    assert resolve_storage_url(pg, str(tmp_path), env={"TUNING_DB_PASSWORD": "s3cr/t"}) == \
        "postgresql+psycopg://tuner:s3cr%2Ft@db.ns.svc:5432/optuna"
    assert resolve_storage_url(pg, str(tmp_path), env={}) == "postgresql+psycopg://tuner@db.ns.svc:5432/optuna"
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    from_file = StorageConfig(url=pg.url, password_file=str(secret))
    assert resolve_storage_url(from_file, str(tmp_path), env={"TUNING_DB_PASSWORD": "env"}) == \
        "postgresql+psycopg://tuner:from-file@db.ns.svc:5432/optuna"
    with pytest.raises(ConfigError, match=r"StorageConfig\.url: .*must not contain a password"):
        StorageConfig.parse({"url": "postgresql://tuner:hunter2@db/optuna"})
    with pytest.raises(ConfigError, match=r"StorageConfig\.url: .*scheme 'mysql' is not supported"):
        StorageConfig.parse({"url": "mysql://tuner@db/optuna"})
    with pytest.raises(ConfigError, match=r"StorageConfig\.password_env"):
        StorageConfig.parse({"password_env": "NOT-AN-ENV"})


def test_run_step_writes_outputs_and_the_best_trainer_config(tmp_path: Path) -> None:
    cfg = {"spec": SPEC, "poll_interval_s": 1, "renderer": "svg"}
    r = run_step(cfg, base(tmp_path), SimulatedBackend(accuracy, metric="val_accuracy"), str(tmp_path),
                 clock=clock())
    assert r.succeeded and r.stop_reason is StopReason.MAX_TRIALS
    names = {"trials.csv", "trials.parquet", "summary.json", "optimization_history.html", "best_params.json",
             "best_trainer_config.json", "study.db"}
    assert names <= set(os.listdir(tmp_path))
    trainer = json.loads((tmp_path / "best_trainer_config.json").read_text())
    assert r.best() is not None and trainer == r.best().apply(base(tmp_path).trainer_config)  # type: ignore[union-attr]


def test_run_step_fails_after_writing_reports_when_too_many_trials_fail(tmp_path: Path) -> None:
    def fails(cfg: dict[str, Any]) -> list[float]:
        raise SimulatedFailure("diverged", accuracy(cfg), epochs=1)

    with pytest.raises(TuningFailed, match="ExperimentMaxFailedTrialsReached") as err:
        run_step({"spec": SPEC, "poll_interval_s": 1, "renderer": "svg"}, base(tmp_path),
                 SimulatedBackend(fails, metric="val_accuracy"), str(tmp_path), clock=clock())
    assert err.value.result.counts()["Failed"] == 2
    assert (tmp_path / "trials.csv").exists() and (tmp_path / "optimization_history.html").exists()
    assert not (tmp_path / "best_params.json").exists() and not (tmp_path / "best_trainer_config.json").exists()


def test_sigterm_becomes_system_exit_and_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as err, on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.1) if hasattr(signal, "sigtimedwait") else None
    assert err.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
