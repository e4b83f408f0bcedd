"""Tuning outputs: the trials table, the typed best parameters, the summary, and the history page (Optuna's own
plotly figures, self-contained: plotly.js inlined once, nothing fetched)."""

from __future__ import annotations

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
from plotly.offline import get_plotlyjs

from components._core.config import ConfigError
from components._core.signals import on_sigterm
from components.training.launch import LaunchSpec
from components.tuning.engine import run_tuning
from components.tuning.params import BestParams
from components.tuning.report import FILES, _figures, history_html, write_reports, write_trials_table
from components.tuning.results import StopReason, TuningResult, tuning_result
from components.tuning.spec import TuningSpec
from tests.fakes.clock import ManualClock
from tests.fakes.learning_curves import SimulatedBackend, SimulatedFailure

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
FIGURE_TITLES = ["Optimization History Plot", "Intermediate Values Plot", "Parallel Coordinate Plot",
                 "Hyperparameter Importances"]


def accuracy(cfg: dict[str, Any]) -> list[float]:
    top = 0.95 - abs(math.log10(cfg["lr"]) + 2) * 0.2 - (0.05 if cfg["optimizer"]["name"] == "sgd" else 0.0)
    return [top * (1 - math.exp(-0.8 * (e + 1))) for e in range(6)]


def base(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec.parse({"name": "tune-report", "trainer_config": {"epochs": 6, "optimizer": {"name": "adam"}},
                             "data_uri": "unused", "output_uri": str(tmp_path / "runs"), "world_size": 1})


def study(tmp_path: Path, backend: SimulatedBackend, **spec: Any) -> TuningResult:
    result, _ = run_tuning(TuningSpec.parse({**SPEC, **spec}), base(tmp_path), backend,
                           storage=optuna.storages.InMemoryStorage(), storage_label="memory",
                           clock=ManualClock().clock())
    return result


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> TuningResult:
    return study(tmp_path_factory.mktemp("study"), SimulatedBackend(accuracy, metric="val_accuracy"))


def test_the_fixture_study_has_every_kind_of_finished_trial(result: TuningResult) -> None:
    assert result.stop_reason is StopReason.MAX_TRIALS and result.trials.height == 6
    assert result.counts()["Succeeded"] >= 2 and result.counts()["EarlyStopped"] >= 1


def test_trials_table_round_trips_as_csv_and_parquet(result: TuningResult, tmp_path: Path) -> None:
    assert write_trials_table(result, str(tmp_path / "t.csv")) == 6
    assert write_trials_table(result, str(tmp_path / "t.parquet")) == 6
    parquet = pl.read_parquet(tmp_path / "t.parquet")
    assert parquet.equals(result.trials)
    assert parquet.schema["params_hidden"] == pl.Int64 and parquet.schema["params_batch_size"] == pl.Int64
    assert parquet.schema["params_lr"] == pl.Float64 and parquet.schema["params_optimizer.name"] == pl.String
    csv = pl.read_csv(tmp_path / "t.csv")
    assert csv["name"].to_list() == result.trials["name"].to_list()
    assert all(n.endswith(f"-t{i}") for i, n in enumerate(csv["name"].to_list()))
    assert csv["state"].to_list() == result.trials["state"].to_list()
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_trials_table(result, str(tmp_path / "t.jsonl"))


def test_best_params_are_a_typed_output_the_training_step_applies(result: TuningResult, tmp_path: Path) -> None:
    paths = write_reports(result, str(tmp_path))
    assert set(paths) == set(FILES) and all(Path(p).is_file() for p in paths.values())
    best = BestParams.parse(json.loads(Path(paths["best_params"]).read_text()))
    best_row = result.trials.filter(pl.col("state") == "Succeeded").sort("value", descending=True).row(0, named=True)
    assert best.value == best_row["value"] and best.trial_name == best_row["name"]
    assert best.direction == "maximize" and best.objective_metric_name == "val_accuracy"
    assert best.study_name == result.study_name
    assert best.params == {"lr": best_row["params_lr"], "hidden": best_row["params_hidden"],
                           "batch_size": best_row["params_batch_size"],
                           "optimizer.name": best_row["params_optimizer.name"]}
    assert isinstance(best.params["hidden"], int) and isinstance(best.params["batch_size"], int)
    trainer = best.apply({"epochs": 6, "optimizer": {"name": "adam", "momentum": 0.9}})
    assert trainer["optimizer"] == {"name": best.params["optimizer.name"], "momentum": 0.9}
    assert trainer["lr"] == best.params["lr"] and trainer["epochs"] == 6
    summary = json.loads(Path(paths["summary"]).read_text())
    assert summary["stop_reason"] == "ExperimentMaxTrialsReached" and summary["best_params"] == best.params
    assert summary["succeeded"] is True and summary["counts"] == result.counts()
    with pytest.raises(ConfigError, match=r"BestParams\.value"):
        BestParams.parse({**best.model_dump(), "value": "nan"})


def test_metrics_count_trials_by_state_and_epochs(result: TuningResult) -> None:
    m = result.metrics()
    counts = result.counts()
    assert m["trials"] == 6 and m["trials_succeeded"] == counts["Succeeded"]
    assert m["trials_early_stopped"] == counts["EarlyStopped"] and m["trials_failed"] == counts["Failed"] == 0
    assert m["epochs_run"] == result.trials["intermediate_count"].sum() < 6 * 6  # pruning saved epochs
    assert m["best_val_accuracy"] == result.best_value


def _outside_plotly_js(page: str) -> str:
    """The page without the inlined plotly.js (which must be there exactly once)."""
    js = get_plotlyjs()
    assert page.count(js) == 1, "plotly.js must be inlined exactly once"
    return page.replace(js, "")


def test_history_page_is_self_contained(result: TuningResult) -> None:
    page = history_html(result)
    rest = _outside_plotly_js(page)
    # nothing is loaded from elsewhere: no tag with a source, no URL at all outside plotly.js itself
    assert not re.search(r"<(script|link|img|iframe|object|embed)[^>]+(src|href|data)\s*=", page, re.I)
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+", rest) == []
    assert "cdn" not in rest.lower() and "require(" not in rest
    assert rest.count("<script") == 1 + len(FIGURE_TITLES)  # the plotly.js block and one per figure
    assert history_html(result) == page  # deterministic: same trials, same page


def test_history_page_shows_optunas_figures_of_the_finished_trials(result: TuningResult) -> None:
    page = _outside_plotly_js(history_html(result))
    assert page.count("Plotly.newPlot(") == len(FIGURE_TITLES)
    for title in FIGURE_TITLES:
        assert f'"text":"{title}"' in page
    assert result.study_name in page and "val_accuracy" in page and "ExperimentMaxTrialsReached" in page
    assert f"<title>Tuning: {result.study_name}</title>" in page
    figures = {f.layout.title.text: f for f in _figures(result)}
    assert list(figures) == FIGURE_TITLES
    history = figures["Optimization History Plot"]
    complete = result.trials.filter(pl.col("state") == "Succeeded")
    points = next(t for t in history.data if t.mode == "markers")
    assert sorted(points.x) == complete["number"].to_list()  # one point per complete trial
    assert sorted(points.y) == sorted(complete["value"].to_list())
    curves = figures["Intermediate Values Plot"].data
    assert len(curves) == result.trials.height  # every finished trial's curve, pruned ones too
    assert sorted(len(c.x) for c in curves) == sorted(result.trials["intermediate_count"].to_list())
    summary = json.loads(re.search(r"<pre>(.*)</pre>", page, re.S).group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert summary == json.loads(json.dumps(result.to_metadata()))


def test_history_page_of_a_small_or_failed_study_leaves_out_what_it_cannot_plot(tmp_path: Path) -> None:
    def fails(cfg: dict[str, Any]) -> list[float]:
        raise SimulatedFailure("diverged", accuracy(cfg), epochs=1)

    failed = study(tmp_path, SimulatedBackend(fails, metric="val_accuracy"), parallelTrialCount=1)
    assert failed.stop_reason is StopReason.MAX_FAILED_TRIALS and failed.best() is None
    page = _outside_plotly_js(history_html(failed))
    assert page.count("Plotly.newPlot(") == 2  # history and intermediate values; nothing complete to compare
    assert "Parallel Coordinate Plot" not in page and "ExperimentMaxFailedTrialsReached" in page
    paths = write_reports(failed, str(tmp_path / "out"))
    assert "best_params" not in paths and not (tmp_path / "out" / "best_params.json").exists()
    assert pl.read_parquet(paths["trials_parquet"])["state"].to_list() == ["Failed", "Failed"]


def test_history_page_of_trials_without_intermediate_values(result: TuningResult) -> None:
    """Katib reports one observation per trial: no intermediate values plot, the rest as usual."""
    spec = result.spec
    trials = [optuna.trial.create_trial(state=t.state, value=t.value, params=t.params, distributions=t.distributions,
                                        user_attrs=t.user_attrs) for t in result.frozen_trials]
    for number, t in enumerate(trials):
        t.number = number
    katib_like = tuning_result(spec, study_name="katib-x", storage="katib", stop_reason=StopReason.MAX_TRIALS,
                               trials=trials)
    page = _outside_plotly_js(history_html(katib_like))
    assert page.count("Plotly.newPlot(") == 3 and "Intermediate Values Plot" not in page
    assert katib_like.best_value == result.best_value


def test_sigterm_becomes_system_exit_and_is_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as err, on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0.1) if hasattr(signal, "sigtimedwait") else None
    assert err.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
