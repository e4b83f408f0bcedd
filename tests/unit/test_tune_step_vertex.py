"""The tuning step with the Optuna engine and trials as Vertex AI CustomJobs, through its production path
(``tune_step``) with only Vertex faked: a fake job client whose jobs run the trainer, injected where the backend
makes its client (``components.training.vertex.default_client``)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from google.api_core import exceptions as gexc

from components._core.k8s_meta import MANAGED_BY, deterministic_name
from components._core.signals import Terminated
from components.training import vertex
from components.training.config import TrainerConfig
from components.training.vertex import ATTEMPT_LABEL, HASH_LABEL, STEP_LABEL, VertexConfig
from components.tuning.engine import trial_name
from components.tuning.spec import TuningSpec
from components.tuning.step import TuneOutcome, tune_step
from tests.fakes.clock import ManualClock
from tests.fakes.operators import JobFails, VertexTrainer
from tests.unit.test_tune_step_kubeflow import SPEC, TRAINER, auc_curve

RUN, TASK = "run-v", "tune"
NAME = deterministic_name(RUN, TASK, prefix="tune")
STUDY = f"{NAME}-{TuningSpec.parse(SPEC).digest()}"


class VertexTuning:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp, self.clock = tmp_path, ManualClock()
        self.client = VertexTrainer(auc_curve)
        self.configs: list[VertexConfig] = []
        self.root = f"memory://bucket/{tmp_path.name}"

        def default_client(cfg: VertexConfig) -> VertexTrainer:
            self.configs.append(cfg)
            return self.client

        monkeypatch.setattr(vertex, "default_client", default_client)

    def step(self, spec: dict[str, Any] = SPEC) -> TuneOutcome:
        launch = {"backend": "vertex", "output_root": self.root, "world_size": 3,
                  "vertex": {"project": "proj", "location": "europe-west4", "staging_bucket": "gs://staging",
                             "labels": {"team": "ml"}, "wait": {"poll_interval_s": 11}}}
        return tune_step(f"{self.root}/train.parquet", output_dir=str(self.tmp / "run"), spec=spec,
                         trainer_config=TRAINER, launch=launch, tune={}, run_id=RUN, task=TASK,
                         clock=self.clock.clock())

    def trial_jobs(self) -> dict[str, Any]:
        return {j.display_name: j for j in self.client.jobs.values()}


@pytest.fixture()
def tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VertexTuning:
    return VertexTuning(tmp_path, monkeypatch)


def test_each_trial_is_a_custom_job_labelled_for_adoption_and_polled_at_the_configured_interval(
        tuning: VertexTuning) -> None:
    out = tuning.step()
    t = out.result.trials
    names = [trial_name(STUDY, n) for n in range(4)]
    assert t["name"].to_list() == names and t["state"].to_list() == ["Succeeded"] * 4
    assert len(tuning.configs) == 1 and tuning.configs[0].project == "proj"  # one client, from the launch config
    jobs = tuning.trial_jobs()
    assert sorted(jobs) == sorted(names)
    base = TrainerConfig.parse(TRAINER).model_dump(mode="json", exclude_none=True)
    for row in t.iter_rows(named=True):
        job = jobs[row["name"]]
        assert job.labels == {"team": "ml", "managed-by": MANAGED_BY, STEP_LABEL: row["name"], ATTEMPT_LABEL: "1",
                              HASH_LABEL: job.labels[HASH_LABEL]}
        assert [p["replica_count"] for p in job.pools] == [1, 2]  # chief + 2 workers for world_size 3
        command = job.pools[0]["container_spec"]["command"]
        cfg = json.loads(command[command.index("--config") + 1])
        assert cfg == {**base, "lr": row["params_lr"], "dropout": row["params_dropout"],
                       "batch_size": row["params_batch_size"],
                       "early_stopping": {**base["early_stopping"], "metric": row["params_early_stopping.metric"]}}
        assert command[command.index("--output-uri") + 1] == f"{tuning.root}/{NAME}/trials/{row['name']}"
        assert job.timeout_s == 3600 and row["value"] == pytest.approx(max(auc_curve(cfg)))
    assert {s for s in tuning.clock.sleeps if s} == {11.0}  # launch.vertex.wait.poll_interval_s
    assert out.best.value == t["value"].max() and isinstance(out.best_trainer_config["batch_size"], int)
    assert json.loads((tuning.tmp / "run" / "best_trainer_config.json").read_text()) == out.best_trainer_config


def test_failed_jobs_fail_their_trials_with_vertexs_message(tuning: VertexTuning) -> None:
    def curve(cfg: dict[str, Any]) -> list[float]:
        if cfg["batch_size"] == 64:
            raise JobFails("OOMKilled", epochs=1)
        return auc_curve(cfg)

    tuning.client.objective = curve
    out = tuning.step({**SPEC, "maxFailedTrialCount": 4})
    t = out.result.trials
    failed = t.filter(pl.col("params_batch_size") == 64)
    assert failed.height >= 1 and set(failed["state"].to_list()) == {"Failed"}
    assert all(m.endswith("exited with a non-zero status: OOMKilled") for m in failed["message"].to_list())
    assert set(t.filter(pl.col("params_batch_size") == 32)["state"].to_list()) == {"Succeeded"}
    assert out.best.params["batch_size"] == 32


def test_transient_vertex_errors_do_not_fail_a_trial(tuning: VertexTuning) -> None:
    tuning.client.fail_next("get", gexc.ServiceUnavailable("backend unavailable"), times=2)
    tuning.client.fail_next("create", gexc.TooManyRequests("quota"))
    out = tuning.step()
    assert out.result.trials["state"].to_list() == ["Succeeded"] * 4 and len(tuning.client.jobs) == 4
    assert not tuning.client._faults["get"] and not tuning.client._faults["create"]  # all were raised


def test_sigterm_cancels_the_running_trial_jobs(tuning: VertexTuning) -> None:
    tuning.clock.on_sleep = lambda n: os.kill(os.getpid(), signal.SIGTERM) if n == 3 else None
    with pytest.raises(Terminated):
        tuning.step()
    jobs = list(tuning.client.jobs.values())
    assert len(jobs) == 2 and [j.cancel_requests for j in jobs] == [1, 1]  # one request each, not repeated
    assert {j.state for j in jobs} == {"JOB_STATE_CANCELLED"} and tuning.client.live() == []


def test_pruned_trials_jobs_are_cancelled(tuning: VertexTuning) -> None:
    spec = {**SPEC, "parallelTrialCount": 1, "maxTrialCount": 8, "maxFailedTrialCount": 0,
            "earlyStopping": {"algorithmSettings": [{"name": "min_trials_required", "value": "2"},
                                                    {"name": "start_step", "value": "2"}]}}
    out = tuning.step(spec)
    t = out.result.trials
    pruned = set(t.filter(pl.col("state") == "EarlyStopped")["name"].to_list())
    assert pruned
    jobs = tuning.trial_jobs()
    assert {n for n, j in jobs.items() if j.cancel_requests} == pruned
    assert all(jobs[n].state == "JOB_STATE_SUCCEEDED" for n in set(jobs) - pruned)
