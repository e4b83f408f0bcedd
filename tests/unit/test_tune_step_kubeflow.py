"""The tuning step with the Optuna engine and trials as PyTorchJobs, through its production path (``tune_step``)
with only the cluster faked: the fake apiserver and a fake training operator, injected where the step makes its
Kubernetes clients. Valid trial jobs, the configured poll interval, transient API errors, pruning, SIGTERM, and
retries that can succeed (a failed study's retry starts study attempt 2; an interrupted one adopts its trials)."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import time
from collections import deque
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import pytest
from kubernetes.client.exceptions import ApiException

from components._core.config import ConfigError
from components._core.k8s_meta import deterministic_name
from components._core.signals import Terminated
from components.training.config import TrainerConfig
from components.tuning.engine import trial_name
from components.tuning.params import BestParams
from components.tuning.spec import TuningSpec
from components.tuning.step import TuneOutcome, TuningFailed, tune_step
from components.tuning.storage import open_storage
from tests.fakes.k8s import SimulatedCrash
from tests.fakes.operators import Cluster, JobFails, trainer_args
from tests.schemas import validate_pytorchjob

RUN, TASK = "run-9", "tune"
NAME = deterministic_name(RUN, TASK, prefix="tune")
TRAINER = {"hidden_sizes": [16], "max_epochs": 4, "early_stopping": {"metric": "val_auc", "patience": 0},
           "seed": 3}
SPEC: dict[str, Any] = {
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": 1e-4, "max": 0.1, "distribution": "logUniform"}},
        {"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": 0.0, "max": 0.5}},
        {"name": "batch_size", "parameterType": "discrete", "feasibleSpace": {"list": [32, 64]}},
        {"name": "early_stopping.metric", "parameterType": "categorical",
         "feasibleSpace": {"list": ["val_auc", "val_loss"]}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 4, "maxFailedTrialCount": 1,
}


def auc_curve(cfg: dict[str, Any]) -> list[float]:
    """val_auc per epoch: best near lr=10^-2.5 with little dropout; ``max_epochs`` epochs."""
    top = 0.97 - 0.08 * abs(math.log10(cfg["lr"]) + 2.5) - 0.1 * cfg["dropout"]
    return [top - 0.3 / (e + 1) for e in range(cfg["max_epochs"])]


def study_name(spec: dict[str, Any] = SPEC, attempt: int = 1) -> str:
    return f"{NAME}-{TuningSpec.parse(spec).digest()}" + (f"-a{attempt}" if attempt > 1 else "")


class Tuning:
    """The step's inputs around the fake cluster; ``step()`` calls ``tune_step`` as the wrapper does."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.cluster = Cluster(lambda cfg: self.curve(cfg)).install(monkeypatch)
        self.broken = False
        self.root = f"memory://bucket/{tmp_path.name}"  # the memory filesystem is shared by the whole process

    def curve(self, cfg: dict[str, Any]) -> list[float]:
        if self.broken:
            raise JobFails("Master replica failed with exit code 1: CUDA error", epochs=1)
        return auc_curve(cfg)

    def launch(self, **kubeflow: Any) -> dict[str, Any]:
        return {"backend": "kubeflow", "output_root": self.root, "world_size": 2,
                "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 7}, **kubeflow}}

    def step(self, out: str = "run", spec: dict[str, Any] | None = None, **kubeflow: Any) -> TuneOutcome:
        return tune_step(f"{self.root}/train.parquet", output_dir=str(self.tmp / out), spec=spec or SPEC,
                         trainer_config=TRAINER, launch=self.launch(**kubeflow), tune={}, run_id=RUN, task=TASK,
                         trials_uri=str(self.tmp / f"{out}-trials.parquet"),
                         history_uri=str(self.tmp / f"{out}-history.html"), clock=self.cluster.clock.clock())

    def study(self, out: str = "run", attempt: int = 1) -> optuna.Study:
        return optuna.load_study(study_name=study_name(attempt=attempt),
                                 storage=open_storage(f"sqlite:///{self.tmp / out / 'study.db'}"))


@pytest.fixture()
def tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Tuning:
    return Tuning(tmp_path, monkeypatch)


def test_each_trial_is_a_valid_pytorchjob_polled_at_the_configured_interval(tuning: Tuning) -> None:
    out = tuning.step()
    result = out.result
    names = [trial_name(study_name(), n) for n in range(4)]
    assert result.trials["name"].to_list() == names and result.trials["state"].to_list() == ["Succeeded"] * 4
    jobs = {j["metadata"]["name"]: j for j in tuning.cluster.jobs()}
    assert sorted(jobs) == sorted(names)
    base = TrainerConfig.parse(TRAINER).model_dump(mode="json", exclude_none=True)
    for row in result.trials.iter_rows(named=True):
        job = jobs[row["name"]]
        validate_pytorchjob(job)
        assert job["metadata"]["namespace"] == "ml"
        assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1  # world_size 2: master + 1 worker
        args = trainer_args(job)
        cfg = json.loads(args["config"])
        assert cfg == {**base, "lr": row["params_lr"], "dropout": row["params_dropout"],
                       "batch_size": row["params_batch_size"],
                       "early_stopping": {**base["early_stopping"], "metric": row["params_early_stopping.metric"]}}
        assert args["output-uri"] == f"{tuning.root}/{NAME}/trials/{row['name']}"
        assert row["value"] == pytest.approx(max(auc_curve(cfg))) and row["intermediate_count"] == 4
        reads = tuning.cluster.read_times(row["name"])
        assert len(reads) == 6 and {b - a for a, b in itertools.pairwise(reads)} == {7.0}
    assert {s for s in tuning.cluster.clock.sleeps if s} == {7.0}  # launch.kubeflow.wait.poll_interval_s
    assert all(len(live) < 2 for _, live in tuning.cluster.created)  # parallelTrialCount 2 at a time
    # the outputs: the best config is typed and complete, the reports are written
    best = result.trials.sort("value", descending=True).row(0, named=True)
    assert out.best.value == best["value"] == result.best_value and out.best.trial_name == best["name"]
    assert isinstance(out.best_trainer_config["batch_size"], int) and out.best_trainer_config["hidden_sizes"] == [16]
    assert out.best_trainer_config["lr"] == best["params_lr"]
    assert out.best_trainer_config["early_stopping"]["metric"] == best["params_early_stopping.metric"]
    TrainerConfig.parse(out.best_trainer_config)  # the training step accepts it
    run = tuning.tmp / "run"
    assert json.loads((run / "best_trainer_config.json").read_text()) == out.best_trainer_config
    assert BestParams.parse(json.loads((run / "best_params.json").read_text())) == out.best
    assert pl.read_parquet(tuning.tmp / "run-trials.parquet").equals(result.trials)
    assert (tuning.tmp / "run-history.html").read_text() == (run / "optimization_history.html").read_text()
    assert out.result.storage == f"sqlite:///{run / 'study.db'}"
    assert out.metric_values()["trials_succeeded"] == 4 and out.run_metadata()["study"] == study_name()
    logs = (run / "logs.txt").read_text()
    assert all(f"trial {n}: Succeeded value=" in logs for n in names)


@pytest.mark.parametrize("parameter,match", [
    ({"name": "optimizer.name", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
     r"optimizer\.name = 'adam' is not a value the trainer accepts:\n.*TrainerConfig\.optimizer: Extra inputs"),
    ({"name": "dropout", "parameterType": "double", "feasibleSpace": {"min": 0.0, "max": 0.95}},
     r"dropout = 0\.95 is not .*\n.*TrainerConfig\.dropout: Input should be less than or equal to 0\.9"),
    ({"name": "batch_size", "parameterType": "int", "feasibleSpace": {"min": 0, "max": 64}},
     r"batch_size = 0 is not .*TrainerConfig\.batch_size"),
    ({"name": "early_stopping.metric", "parameterType": "categorical",
      "feasibleSpace": {"list": ["val_auc", "val_f1"]}}, r"early_stopping\.metric = 'val_f1' is not"),
    ({"name": "dropout.rate", "parameterType": "double", "feasibleSpace": {"min": 0.1, "max": 0.2}},
     r"dropout\.rate = 0\.1 is not .*trainer_config\.dropout is not a mapping"),
])
def test_a_search_space_the_trainer_cannot_take_fails_before_any_trial(tuning: Tuning, parameter: dict[str, Any],
                                                                      match: str) -> None:
    spec = {**SPEC, "parameters": [SPEC["parameters"][0], parameter]}
    with pytest.raises(ConfigError, match=f"(?s){match}"):
        tuning.step(spec=spec)
    assert tuning.cluster.created == [] and not (tuning.tmp / "run" / "study.db").exists()


def test_transient_api_errors_do_not_fail_a_trial(tuning: Tuning, caplog: pytest.LogCaptureFixture) -> None:
    tuning.cluster.api.fail_next("create", ApiException(status=429, reason="Too Many Requests"))
    tuning.cluster.api.fail_next("get", ApiException(status=503, reason="Service Unavailable"), times=3)
    out = tuning.step()
    assert out.result.trials["state"].to_list() == ["Succeeded"] * 4 and len(tuning.cluster.jobs()) == 4
    assert tuning.cluster.api._faults["get"] == tuning.cluster.api._faults["create"] == deque()  # all raised
    assert tuning.cluster.clock.sleeps[:1] == [1.0]  # the create's backoff
    t0, t1 = (trial_name(study_name(), n) for n in range(2))
    backoffs = [r.getMessage().split(": (")[0] for r in caplog.records if "transient error" in r.getMessage()]
    assert backoffs == [  # each trial's reads back off on their own
        f"create pytorchjobs.kubeflow.org/v1 ml/{t0}: transient error (1 in a row), retrying in 1s",
        f"status of {t0}: transient error (1 in a row), next try in 1s",
        f"status of {t1}: transient error (1 in a row), next try in 1s",
        f"status of {t0}: transient error (2 in a row), next try in 2s"]
    reads = tuning.cluster.read_times(t0)
    assert reads[0] == 1.0 + 1.0 + 2.0  # created after the create's backoff, read after its own two backoffs
    assert all(b - a == 7.0 for a, b in itertools.pairwise(reads))


def test_pruned_trials_jobs_are_deleted(tuning: Tuning) -> None:
    spec = {**SPEC, "parallelTrialCount": 1, "maxTrialCount": 8, "maxFailedTrialCount": 0,
            "earlyStopping": {"algorithmSettings": [{"name": "min_trials_required", "value": "2"},
                                                    {"name": "start_step", "value": "2"}]}}
    out = tuning.step(spec=spec)
    t = out.result.trials
    pruned = t.filter(pl.col("state") == "EarlyStopped")["name"].to_list()
    kept = t.filter(pl.col("state") == "Succeeded")["name"].to_list()
    assert pruned and len(kept) + len(pruned) == 8
    assert [name for name, _ in tuning.cluster.api.deletions] == pruned  # each pruned job, nothing else
    assert sorted(j["metadata"]["name"] for j in tuning.cluster.jobs()) == sorted(kept)
    assert tuning.cluster.operator.live() == []
    assert set(t.filter(pl.col("state") == "EarlyStopped")["intermediate_count"].to_list()) <= {2, 3}


def test_sigterm_deletes_the_running_trial_jobs_and_exits_143(tuning: Tuning) -> None:
    before = signal.getsignal(signal.SIGTERM)
    tuning.cluster.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 3 else None
    with pytest.raises(Terminated) as err:
        tuning.step()
    assert err.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    started = [name for name, _ in tuning.cluster.created]
    assert len(started) == 2 and tuning.cluster.jobs() == []  # both running trials' jobs deleted
    assert sorted(name for name, _ in tuning.cluster.api.deletions) == sorted(started)
    trials = tuning.study().get_trials()
    assert [t.user_attrs["result"]["state"] for t in trials] == ["Killed", "Killed"]


def test_a_sigterm_whose_exception_is_lost_still_cancels_the_trials_and_stops_the_step(tuning: Tuning) -> None:
    def swallowed(n: int) -> None:
        if n == 3:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)
            except Terminated:
                pass  # as when the signal lands in a finalizer: Python reports the exception and drops it

    tuning.cluster.clock.on_sleep = swallowed
    with pytest.raises(Terminated, match="the running trials were cancelled"):
        tuning.step()
    assert len(tuning.cluster.created) == 2 and tuning.cluster.jobs() == []  # no trial started after the SIGTERM
    assert sorted(name for name, _ in tuning.cluster.api.deletions) == sorted(n for n, _ in tuning.cluster.created)


def test_sigterm_during_a_trial_create_deletes_that_job_too(tuning: Tuning) -> None:
    create = tuning.cluster.api.create_namespaced_custom_object

    def create_then_sigterm(*args: Any, **kwargs: Any) -> dict[str, Any]:
        created = create(*args, **kwargs)
        if len(tuning.cluster.created) == 2:  # the second trial's job: SIGTERM while the call is returning
            os.kill(os.getpid(), signal.SIGTERM)
        return created

    tuning.cluster.api.create_namespaced_custom_object = create_then_sigterm  # type: ignore[method-assign]
    with pytest.raises(Terminated, match="while creating"):
        tuning.step()
    assert len(tuning.cluster.created) == 2 and tuning.cluster.jobs() == []  # the one being created too
    trials = tuning.study().get_trials()
    assert [t.user_attrs["result"]["message"] for t in trials] == [
        "tuning step interrupted", "tuning step interrupted while starting the trial"]


def test_a_failed_tuning_step_is_retried_as_study_attempt_two_and_succeeds(tuning: Tuning) -> None:
    tuning.broken = True
    with pytest.raises(TuningFailed, match="ExperimentMaxFailedTrialsReached") as err:
        tuning.step()
    assert err.value.result.counts()["Failed"] == 2
    run = tuning.tmp / "run"
    assert pl.read_parquet(run / "trials.parquet")["state"].to_list() == ["Failed", "Failed"]
    assert (run / "optimization_history.html").exists() and not (run / "best_trainer_config.json").exists()
    assert tuning.cluster.operator.live() == []

    tuning.broken = False  # the cause is fixed; KFP retries the step (same run, task and output folder)
    out = tuning.step()
    assert out.result.study_name == study_name(attempt=2) and out.result.trials["state"].to_list() == ["Succeeded"] * 4
    first = [trial_name(study_name(), n) for n in range(2)]
    second = [trial_name(study_name(attempt=2), n) for n in range(4)]
    assert [name for name, _ in tuning.cluster.created] == first + second  # new jobs for the new attempt
    for name, live in tuning.cluster.created:  # one live job per trial, never two
        assert name not in live and len(live) < 2
    logs = (run / "logs.txt").read_text()
    assert logs.startswith(f"== study attempt 1 {study_name()}: ended ExperimentMaxFailedTrialsReached; "
                           "starting the next attempt\n")
    assert (run / "best_trainer_config.json").exists()


def test_an_interrupted_step_resumes_its_study_and_adopts_the_running_trials(tuning: Tuning) -> None:
    def evicted(n: int) -> None:
        if n == 4:  # two trials running, a few epochs in
            raise SimulatedCrash("step pod evicted")

    tuning.cluster.clock.on_sleep = evicted
    with pytest.raises(SimulatedCrash):
        tuning.step()
    running = [name for name, _ in tuning.cluster.created]
    assert len(running) == 2 and sorted(tuning.cluster.operator.live()) == sorted(running)
    assert tuning.cluster.api.deletions == []  # left running for the retry
    tuning.cluster.clock.on_sleep = None

    out = tuning.step()
    names = [trial_name(study_name(), n) for n in range(4)]
    assert [name for name, _ in tuning.cluster.created] == names  # no second job for the adopted trials
    assert out.result.study_name == study_name() and out.result.trials["state"].to_list() == ["Succeeded"] * 4
    assert out.result.trials["intermediate_count"].to_list() == [4] * 4
    assert (tuning.tmp / "run" / "logs.txt").read_text().startswith(
        f"== study attempt 1 {study_name()}: resumed (last stop: none)\n")


def test_a_trial_whose_start_failed_after_the_create_leaves_no_job_behind(tuning: Tuning) -> None:
    tuning.cluster.api.crash_after_create()  # the apiserver stores the first job, then the call fails
    out = tuning.step()
    t = out.result.trials
    assert t["state"].to_list() == ["Failed", "Succeeded", "Succeeded", "Succeeded"]
    assert t["message"][0] == "could not start: SimulatedCrash: process killed right after create"
    assert [name for name, _ in tuning.cluster.api.deletions] == [t["name"][0]]  # the stray job is deleted
    assert sorted(j["metadata"]["name"] for j in tuning.cluster.jobs()) == sorted(t["name"][1:].to_list())
    assert all(len(live) < 2 for _, live in tuning.cluster.created)  # never more than parallelTrialCount


def test_trials_past_their_deadline_are_deleted_and_failed_and_the_retry_starts_over(tuning: Tuning) -> None:
    tuning.cluster.operator.objective = lambda cfg: [0.5] * 1000  # never finishes in time
    spec = {**SPEC, "maxTrialCount": 2, "maxFailedTrialCount": 2}
    with pytest.raises(TuningFailed, match="ExperimentMaxTrialsReached"):  # no trial succeeded
        tune_step(f"{tuning.root}/train.parquet", output_dir=str(tuning.tmp / "run"), spec=spec,
                  trainer_config=TRAINER, launch={**tuning.launch(), "timeout_s": 60}, tune={}, run_id=RUN,
                  task=TASK, clock=tuning.cluster.clock.clock())
    assert tuning.cluster.jobs() == [] and len(tuning.cluster.api.deletions) == 2
    trials = pl.read_parquet(tuning.tmp / "run" / "trials.parquet")
    assert trials["state"].to_list() == ["Failed", "Failed"]
    assert all("did not finish within 360s" in m for m in trials["message"].to_list())  # 60 s + 300 s grace

    tuning.cluster.operator.objective = tuning.curve  # the retried step's trials finish: it succeeds
    out = tune_step(f"{tuning.root}/train.parquet", output_dir=str(tuning.tmp / "run"), spec=spec,
                    trainer_config=TRAINER, launch={**tuning.launch(), "timeout_s": 60}, tune={}, run_id=RUN,
                    task=TASK, clock=tuning.cluster.clock.clock())
    assert out.result.study_name == study_name(spec, attempt=2) and out.result.succeeded
    assert len(tuning.cluster.created) == 4 and len(tuning.cluster.jobs()) == 2
