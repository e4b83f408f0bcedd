"""The tuning step with ``engine: katib``, through its production path (``tune_step``) with only the cluster faked
(the fake apiserver and a fake Katib controller): the Experiment is created through the shared launcher, its Trials
become the trials table and the history page, the best trainer config is typed; a Failed Experiment fails the
step after the reports are written; a retry after a failed Experiment creates attempt ``-a2``; a running one is
adopted; SIGTERM deletes it."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from components._core.config import ConfigError
from components._core.k8s_meta import ATTEMPT_LABEL, deterministic_name
from components._core.signals import Terminated
from components.training.config import TrainerConfig
from components.tuning.katib import MAX_NAME
from components.tuning.step import TuneOutcome, TuningFailed, tune_step
from tests.fakes.k8s import SimulatedCrash
from tests.fakes.operators import Cluster
from tests.schemas import validate_katib, validate_pytorchjob
from tests.unit.test_tune_step_kubeflow import SPEC, TRAINER

RUN, TASK = "run-k", "tune"
EXPERIMENT = deterministic_name(RUN, TASK, "katib", max_len=MAX_NAME)
LRS = ["0.001", "0.003", "0.01", "0.03"]


def assign(i: int) -> dict[str, str]:
    """What Katib's suggestion would assign to trial ``i`` (Katib's strings)."""
    return {"lr": LRS[i], "dropout": "0.1", "batch_size": "64" if i % 2 else "32",
            "early_stopping.metric": "val_loss" if i == 1 else "val_auc"}


def objective(params: dict[str, str]) -> float:
    return {"0.001": 0.90, "0.003": 0.95, "0.01": 0.93, "0.03": 0.80}[params["lr"]]


class KatibTuning:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> None:
        self.tmp = tmp_path
        self.cluster = Cluster().install(monkeypatch)
        self.katib = self.cluster.katib(assign, objective, trials=4, fail=fail)

    def step(self, out: str = "run", **launch: Any) -> TuneOutcome:
        cfg = {"backend": "kubeflow", "output_root": "s3://bucket/tuning", "world_size": 2,
               "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 13}}, **launch}
        return tune_step("s3://bucket/train.parquet", output_dir=str(self.tmp / out), spec=SPEC,
                         trainer_config=TRAINER, launch=cfg, tune={"engine": "katib", "timeout_s": 7200},
                         run_id=RUN, task=TASK, trials_uri=str(self.tmp / f"{out}-trials.parquet"),
                         history_uri=str(self.tmp / f"{out}-history.html"), clock=self.cluster.clock.clock())

    def experiments(self) -> list[dict[str, Any]]:
        return self.cluster.api.stored("experiments")


@pytest.fixture()
def katib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KatibTuning:
    return KatibTuning(tmp_path, monkeypatch)


def test_the_experiment_runs_and_its_trials_become_the_table_the_page_and_a_typed_best_config(
        katib: KatibTuning) -> None:
    out = katib.step()
    (exp,) = katib.experiments()
    assert exp["metadata"]["name"] == EXPERIMENT and exp["metadata"]["labels"][ATTEMPT_LABEL] == "1"
    written = json.loads((katib.tmp / "run" / "experiment.json").read_text())
    assert written["spec"] == exp["spec"]
    validate_katib(written)
    trial_job = json.loads(json.dumps(exp["spec"]["trialTemplate"]["trialSpec"]).replace(
        "${trialParameters.lr}", "0.01").replace("${trialParameters.dropout}", "0.1").replace(
        "${trialParameters.batch_size}", "32").replace("${trialParameters.early_stopping_metric}", "val_auc"))
    validate_pytorchjob({**trial_job, "metadata": {**trial_job["metadata"], "name": "trial-x"}})
    assert exp["spec"]["maxTrialCount"] == 4 and exp["spec"]["parallelTrialCount"] == 2
    # the trials table: one row per Katib Trial, typed parameters
    table = pl.read_parquet(katib.tmp / "run-trials.parquet")
    assert table.equals(pl.read_parquet(katib.tmp / "run" / "trials.parquet"))
    assert table["name"].to_list() == [f"{EXPERIMENT}-t{i}" for i in range(4)]
    assert table["state"].to_list() == ["Succeeded"] * 4 and table["value"].to_list() == [0.90, 0.95, 0.93, 0.80]
    assert table["params_lr"].to_list() == [float(v) for v in LRS]
    assert table["params_batch_size"].dtype == pl.Int64 and table["params_batch_size"].to_list() == [32, 64, 32, 64]
    # the history page, from Optuna's figures of the Katib trials
    page = (katib.tmp / "run-history.html").read_text()
    assert page == (katib.tmp / "run" / "optimization_history.html").read_text()
    assert '"text":"Optimization History Plot"' in page and '"text":"Parallel Coordinate Plot"' in page
    assert EXPERIMENT in page
    # the best trainer config is typed and complete
    best = out.best_trainer_config
    base = TrainerConfig.parse(TRAINER).model_dump(mode="json", exclude_none=True)
    assert best == {**base, "lr": 0.003, "dropout": 0.1, "batch_size": 64,
                    "early_stopping": {**base["early_stopping"], "metric": "val_loss"}}
    assert type(best["batch_size"]) is int and type(best["lr"]) is float
    assert out.best.value == 0.95 and out.best.trial_name == f"{EXPERIMENT}-t1" and out.best.study_name == EXPERIMENT
    TrainerConfig.parse(best)
    assert json.loads((katib.tmp / "run" / "best_trainer_config.json").read_text()) == best
    assert out.result.storage == "katib" and out.metric_values()["trials_succeeded"] == 4
    assert set(katib.cluster.clock.sleeps) == {13.0}  # launch.kubeflow.wait.poll_interval_s
    logs = (katib.tmp / "run" / "logs.txt").read_text()
    assert logs.startswith(f"== attempt 1 {EXPERIMENT}: Pending, created\n")
    assert logs.endswith(f"== Katib Experiment {EXPERIMENT} succeeded: ExperimentMaxTrialsReached: Experiment has "
                         "succeeded because max trial count has reached\n")


def test_a_failed_experiment_fails_the_step_after_writing_reports_and_the_retry_creates_attempt_two(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    katib = KatibTuning(tmp_path, monkeypatch, fail="Experiment has failed because max failed count has reached")
    ended = (f"Katib Experiment {EXPERIMENT} failed: ExperimentMaxFailedTrialsReached: Experiment has failed "
             "because max failed count has reached")
    with pytest.raises(TuningFailed, match="ExperimentMaxFailedTrialsReached") as err:
        katib.step()
    assert str(err.value).endswith(f"; {ended}")  # Katib's own words on why
    run = tmp_path / "run"
    assert (run / "logs.txt").read_text().endswith(f"== {ended}\n")
    assert pl.read_parquet(tmp_path / "run-trials.parquet").height == 4  # the reports are written first
    assert (tmp_path / "run-history.html").exists() and (run / "summary.json").exists()
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == "ExperimentMaxFailedTrialsReached"
    assert not (run / "best_trainer_config.json").exists()

    katib.katib.fail = None  # the retried step runs the next attempt, which succeeds
    out = katib.step("retry")
    names = [e["metadata"]["name"] for e in katib.experiments()]
    assert names == [EXPERIMENT, f"{EXPERIMENT}-a2"] and out.result.study_name == f"{EXPERIMENT}-a2"
    assert [e["metadata"]["labels"][ATTEMPT_LABEL] for e in katib.experiments()] == ["1", "2"]
    assert out.best.value == 0.95 and out.best.trial_name == f"{EXPERIMENT}-a2-t1"
    log = (tmp_path / "retry" / "logs.txt").read_text()
    assert f"== attempt 1 {EXPERIMENT}: Failed, ended before: ExperimentMaxFailedTrialsReached" in log
    assert f"== attempt 2 {EXPERIMENT}-a2: Pending, created" in log


def test_a_retry_adopts_the_running_experiment(katib: KatibTuning) -> None:
    katib.katib.finish_on_read = 3  # running when the step dies and when the retry looks; done on the next read
    katib.cluster.clock.on_sleep = lambda n: (_ for _ in ()).throw(SimulatedCrash("evicted")) if n == 1 else None
    with pytest.raises(SimulatedCrash):
        katib.step()
    assert len(katib.experiments()) == 1 and katib.cluster.api.deletions == []
    katib.cluster.clock.on_sleep = None
    out = katib.step("retry")
    assert len(katib.experiments()) == 1 and out.result.study_name == EXPERIMENT and out.best.value == 0.95
    assert f"== attempt 1 {EXPERIMENT}: Running, adopted" in (katib.tmp / "retry" / "logs.txt").read_text()


def test_sigterm_deletes_the_experiment(katib: KatibTuning) -> None:
    katib.cluster.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 1 else None
    with pytest.raises(Terminated):
        katib.step()
    assert katib.experiments() == [] and katib.cluster.api.deletions == [(EXPERIMENT, "Foreground")]


def test_katib_needs_the_kubeflow_backend(katib: KatibTuning) -> None:
    with pytest.raises(ConfigError, match="katib runs trials as PyTorchJobs"):
        tune_step("d.parquet", output_dir=str(katib.tmp / "run"), spec=SPEC, trainer_config=TRAINER,
                  launch={"backend": "local"}, tune={"engine": "katib"}, run_id=RUN, task=TASK)
    assert katib.experiments() == []
