"""Real trials: the trainer under torch.distributed.run through the local backend, tuned by the tuning step
(``tune_step``): the trials' parameters reach the trainer, values come from what it wrote, and SIGTERM to the step
takes every trial's process tree down and records the trials as killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import polars as pl
import psutil
import pytest

from components._core.k8s_meta import deterministic_name
from components.data.breast_cancer import breast_cancer_events
from components.tuning.spec import TuningSpec
from components.tuning.step import tune_step
from components.tuning.storage import open_storage

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SPEC: dict[str, Any] = {
    "objective": {"type": "maximize", "objectiveMetricName": "val_auc"},
    "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "4"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": 1e-4, "max": 3e-2, "distribution": "logUniform"}},
        {"name": "early_stopping.metric", "parameterType": "categorical",
         "feasibleSpace": {"list": ["val_auc", "val_loss"]}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 3, "maxFailedTrialCount": 0,
}
LAUNCH = {"backend": "local", "world_size": 1, "timeout_s": 300,
          "local": {"stream_logs": False, "grace_s": 5, "wait": {"poll_interval_s": 0.2}}}


def test_three_real_trials_two_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "bc.parquet"
    breast_cancer_events().write_parquet(data)
    trainer = {"max_epochs": 3, "hidden_sizes": [16], "early_stopping": {"patience": 0}, "seed": 3}
    out = tmp_path / "tuning"
    outcome = tune_step(str(data), output_dir=str(out), spec=SPEC, trainer_config=trainer, launch=LAUNCH, tune={},
                        run_id="run-local-1", task="tune")
    result = outcome.result
    t = result.trials
    assert t["state"].to_list() == ["Succeeded"] * 3, t["message"].to_list()
    assert t["intermediate_count"].to_list() == [3, 3, 3]
    for row in t.iter_rows(named=True):
        trial_dir = out / "trials" / row["name"]
        card = json.loads((trial_dir / "model" / "model_card.json").read_text())
        assert card["trainer_config"]["lr"] == row["params_lr"]  # the trial's parameters reached the trainer
        assert card["trainer_config"]["early_stopping"]["metric"] == row["params_early_stopping.metric"]
        assert card["trainer_config"]["hidden_sizes"] == [16]  # the rest of the base config kept
        epochs = pl.read_ndjson(trial_dir / "metrics.jsonl")
        assert row["value"] == pytest.approx(max(epochs["val_auc"].max(), card["metrics"]["val_auc"]))
        assert (out / "launcher" / f"{row['name']}.log").exists()  # each trial's log, kept by the backend
    assert result.best_value is not None and result.best_value == t["value"].max() and result.best_value > 0.9
    best = json.loads((out / "best_trainer_config.json").read_text())
    assert best == outcome.best_trainer_config and best["lr"] == outcome.best.params["lr"]
    assert best["max_epochs"] == 3 and best["early_stopping"]["metric"] == outcome.best.params["early_stopping.metric"]


STEP = """
from components.tuning.step import tune_step
tune_step({data!r}, output_dir={out!r}, spec={spec!r}, trainer_config={trainer!r}, launch={launch!r}, tune={{}},
          run_id="run-local-sigterm", task="tune")
"""


def test_sigterm_kills_every_running_trial_and_records_it(tmp_path: Path) -> None:
    data = tmp_path / "bc15.parquet"
    pl.concat([breast_cancer_events()] * 15).write_parquet(data)  # slow enough epochs to be caught running
    out = tmp_path / "tuning"
    trainer = {"max_epochs": 10000, "early_stopping": {"patience": 0}}
    script = textwrap.dedent(STEP.format(data=str(data), out=str(out), spec=json.dumps(SPEC),
                                         trainer=json.dumps(trainer), launch=json.dumps(LAUNCH)))
    step = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 180
        while len(list((out / "trials").glob("*/metrics.jsonl"))) < 2:  # both parallel trials are training
            assert step.poll() is None and time.monotonic() < deadline, "trials never started"
            time.sleep(0.2)
        tree = psutil.Process(step.pid).children(recursive=True)
        assert len(tree) >= 4  # two torchrun launchers and their workers
        step.send_signal(signal.SIGTERM)
        _, stderr = step.communicate(timeout=120)
    finally:
        if step.poll() is None:
            step.kill()
    assert step.returncode == 143, stderr[-3000:]
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert alive == []
    study = f"{deterministic_name('run-local-sigterm', 'tune', prefix='tune')}-{TuningSpec.parse(SPEC).digest()}"
    storage = open_storage(f"sqlite:///{out / 'study.db'}")
    assert [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)] == [study]
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    assert [t.user_attrs["result"]["state"] for t in trials] == ["Killed", "Killed"]
    assert {t.user_attrs["result"]["message"] for t in trials} == {"tuning step interrupted"}
