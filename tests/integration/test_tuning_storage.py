"""The tuning study on a real PostgreSQL on loopback (the ``postgres_server`` fixture): the password comes from the
environment, never the URL; the study is readable by another client; a restarted step resumes it; results do not
depend on the storage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from components._core.waiting import Clock, ManualClock
from components.training.launch import LaunchSpec, RunningJob
from components.tuning.optuna_engine import StopReason, TuningError, run_tuning
from components.tuning.run import StorageConfig, resolve_storage_url, run_step
from components.tuning.simulate import SimulatedBackend
from components.tuning.spec import TuningSpec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SPEC: dict[str, Any] = {
    "objective": {"type": "minimize", "objectiveMetricName": "val_loss"},
    "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "21"}, {"name": "n_startup_trials", "value": "3"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": 1e-4, "max": 1, "distribution": "logUniform"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": 1, "max": 4}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 6, "maxFailedTrialCount": 1,
    "earlyStopping": {"algorithmSettings": [{"name": "min_trials_required", "value": "2"},
                                            {"name": "start_step", "value": "2"}]},
}


def curve(cfg: dict[str, Any]) -> list[float]:
    final = 0.1 + 0.3 * (math.log10(cfg["lr"]) + 2) ** 2 + 0.05 * abs(cfg["layers"] - 2)
    return [final + math.exp(-0.6 * e) for e in range(6)]


def clock() -> Clock:
    return ManualClock().clock()


def base(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec.parse({"name": "tune-pg", "trainer_config": {"epochs": 6}, "data_uri": "unused",
                             "output_uri": str(tmp_path / "runs"), "world_size": 1})


def storage(server: Any) -> StorageConfig:
    return StorageConfig(url=server.url().replace("postgresql://", "postgresql+psycopg://"),
                         password_env="TUNING_DB_PASSWORD")


def test_study_lives_in_postgresql_with_the_password_from_the_environment(postgres_server: Any,
                                                                          tmp_path: Path) -> None:
    postgres_server.reset()
    env = {"TUNING_DB_PASSWORD": postgres_server.password}
    cfg = {"spec": SPEC, "storage": storage(postgres_server).model_dump(), "poll_interval_s": 1,
           "renderer": "svg", "study_name": "pg-study"}
    result = run_step(cfg, base(tmp_path), SimulatedBackend(curve), str(tmp_path), env=env, clock=clock())
    assert result.succeeded and result.stop_reason is StopReason.MAX_TRIALS
    assert "pg-test-pw" not in result.storage and result.storage.startswith("postgresql+psycopg://catalog:***@")
    assert not (tmp_path / "study.db").exists()
    # another client reads the same study straight from the database
    url = resolve_storage_url(storage(postgres_server), str(tmp_path), env)
    study = optuna.load_study(study_name="pg-study", storage=url)
    trials = study.get_trials()
    assert [t.number for t in trials] == result.trials["number"].to_list()
    assert [t.user_attrs["result"]["state"] for t in trials] == result.trials["state"].to_list()
    assert study.best_value == result.best_value and study.best_params == result.best_params


def test_a_wrong_password_fails_without_revealing_it(postgres_server: Any, tmp_path: Path) -> None:
    url = resolve_storage_url(storage(postgres_server), str(tmp_path), {"TUNING_DB_PASSWORD": "wrong-secret"})
    with pytest.raises(TuningError, match=r"cannot open tuning storage postgresql\+psycopg://catalog:\*\*\*@") as err:
        run_tuning(SPEC, base(tmp_path), SimulatedBackend(curve), output_dir=str(tmp_path), storage_url=url)
    assert "wrong-secret" not in str(err.value)


def test_same_seed_same_trials_on_postgresql_as_in_memory(postgres_server: Any, tmp_path: Path) -> None:
    postgres_server.reset()
    url = resolve_storage_url(storage(postgres_server), str(tmp_path), {"TUNING_DB_PASSWORD": postgres_server.password})
    on_pg = run_tuning(SPEC, base(tmp_path / "pg"), SimulatedBackend(curve), output_dir=str(tmp_path / "pg"),
                       storage_url=url, clock=clock(), poll_interval_s=1)
    in_memory = run_tuning(SPEC, base(tmp_path / "mem"), SimulatedBackend(curve), output_dir=str(tmp_path / "mem"),
                           storage=optuna.storages.InMemoryStorage(), clock=clock(), poll_interval_s=1)
    assert on_pg.trials.drop("name").equals(in_memory.trials.drop("name"))
    assert on_pg.trials["name"].to_list() == in_memory.trials["name"].to_list()


def test_a_restarted_step_resumes_its_postgresql_study(postgres_server: Any, tmp_path: Path) -> None:
    postgres_server.reset()
    url = resolve_storage_url(storage(postgres_server), str(tmp_path), {"TUNING_DB_PASSWORD": postgres_server.password})

    class DiesOnFourthStart(SimulatedBackend):
        def start(self, spec: LaunchSpec) -> RunningJob:
            if len(self.started) == 3:
                raise SystemExit(143)  # the step's pod is deleted while launching
            return super().start(spec)

    first = DiesOnFourthStart(curve)
    with pytest.raises(SystemExit):
        run_tuning(SPEC, base(tmp_path), first, output_dir=str(tmp_path), storage_url=url, clock=clock(),
                   poll_interval_s=1)
    study_name = f"tune-pg-{TuningSpec.parse(SPEC).digest()}"
    before = optuna.load_study(study_name=study_name, storage=url).get_trials()
    assert len(before) == 4 and all(t.state.is_finished() for t in before)  # running ones recorded as killed
    killed = [t.number for t in before if t.user_attrs["result"]["state"] == "Killed"]
    assert killed and first.cancelled

    second = SimulatedBackend(curve)
    result = run_tuning(SPEC, base(tmp_path), second, output_dir=str(tmp_path), storage_url=url, clock=clock(),
                        poll_interval_s=1)
    assert result.trials.height == 6 and result.stop_reason is StopReason.MAX_TRIALS
    assert second.started == ["tune-pg-t4", "tune-pg-t5"]  # numbering continues in the same study
    assert sorted(result.trials["completion_order"].to_list()) == list(range(1, 7))
