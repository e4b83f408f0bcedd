"""The tuning study on a real PostgreSQL on loopback (the ``postgres_server`` fixture): the tuning step's storage
config names a password-less URL and the password's source (an environment variable or a mounted file), never the
password; the study is readable by another client; results do not depend on the storage; a restarted step
resumes its study, a crashed one adopts its running trials, and a failed one is retried as study attempt 2."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest

from components._core.k8s_meta import deterministic_name
from components._core.signals import Terminated
from components.training.launch import LaunchSpec
from components.tuning.config import StorageConfig
from components.tuning.engine import run_tuning, trial_name
from components.tuning.results import StopReason
from components.tuning.samplers import TuningError
from components.tuning.spec import TuningSpec
from components.tuning.step import TuneOutcome, TuningFailed, tune_step
from components.tuning.storage import open_storage
from tests.fakes.clock import ManualClock
from tests.fakes.k8s import SimulatedCrash
from tests.fakes.learning_curves import SimulatedBackend
from tests.fakes.operators import Cluster, JobFails
from tests.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SPEC: dict[str, Any] = {
    "objective": {"type": "minimize", "objectiveMetricName": "val_loss"},
    "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "21"}, {"name": "n_startup_trials", "value": "3"}]},
    "parameters": [
        {"name": "lr", "parameterType": "double",
         "feasibleSpace": {"min": 1e-4, "max": 1, "distribution": "logUniform"}},
        {"name": "weight_decay", "parameterType": "double", "feasibleSpace": {"min": 0, "max": 0.1}},
    ],
    "parallelTrialCount": 2, "maxTrialCount": 6, "maxFailedTrialCount": 1,
    "earlyStopping": {"algorithmSettings": [{"name": "min_trials_required", "value": "2"},
                                            {"name": "start_step", "value": "2"}]},
}
TRAINER = {"hidden_sizes": [8], "max_epochs": 6, "early_stopping": {"metric": "val_loss", "patience": 0}}
RUN, TASK = "run-pg", "tune"
STUDY = f"{deterministic_name(RUN, TASK, prefix='tune')}-{TuningSpec.parse(SPEC).digest()}"


def curve(cfg: dict[str, Any]) -> list[float]:
    final = 0.1 + 0.3 * (math.log10(cfg["lr"]) + 2) ** 2 + 2 * abs(cfg["weight_decay"] - 0.02)
    return [final + math.exp(-0.6 * e) for e in range(cfg.get("max_epochs", 6))]


@pytest.fixture()
def pg(postgres_server: PostgresServer) -> PostgresServer:
    postgres_server.reset()
    return postgres_server


def storage_config(server: PostgresServer, **password: str) -> dict[str, Any]:
    return {"url": server.url(), "password": password or {"env": "TUNING_DB_PASSWORD"}}


def url(server: PostgresServer) -> str:
    return StorageConfig.parse(storage_config(server)).resolve("/unused", {"TUNING_DB_PASSWORD": server.password})


def step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: dict[str, Any], cluster: Cluster | None = None,
         env: dict[str, str] | None = None, out: str = "run") -> TuneOutcome:
    """The tuning step with PyTorchJob trials on the fake cluster, its study on ``storage``."""
    cluster = cluster or Cluster(curve, metric="val_loss").install(monkeypatch)
    launch = {"backend": "kubeflow", "output_root": f"memory://bucket/{tmp_path.name}",
              "kubeflow": {"namespace": "ml", "wait": {"poll_interval_s": 5}}}
    return tune_step(f"memory://bucket/{tmp_path.name}/train.parquet", output_dir=str(tmp_path / out), spec=SPEC,
                     trainer_config=TRAINER, launch=launch, tune={"storage": storage}, run_id=RUN, task=TASK,
                     clock=cluster.clock.clock(), env=env)


def test_the_study_lives_in_postgresql_with_the_password_from_the_environment(
        pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = step(tmp_path, monkeypatch, storage_config(pg), env={"TUNING_DB_PASSWORD": pg.password})
    result = out.result
    assert result.succeeded and result.stop_reason is StopReason.MAX_TRIALS and result.study_name == STUDY
    assert result.storage == f"postgresql+psycopg://catalog:***@127.0.0.1:{pg.port}/catalog"
    assert pg.password not in (tmp_path / "run" / "summary.json").read_text()
    assert not (tmp_path / "run" / "study.db").exists()
    # another client reads the same study straight from the database
    study = optuna.load_study(study_name=STUDY, storage=url(pg))
    trials = study.get_trials()
    assert [t.number for t in trials] == result.trials["number"].to_list()
    assert [t.user_attrs["result"]["state"] for t in trials] == result.trials["state"].to_list()
    assert "EarlyStopped" in result.trials["state"].to_list()  # pruning decisions read from the database too
    assert study.best_value == result.best_value and study.best_params == result.best_params
    assert study.user_attrs == {"stop_reason": "ExperimentMaxTrialsReached", "succeeded": True}


def test_the_password_from_a_mounted_file(pg: PostgresServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret" / "password"
    secret.parent.mkdir()
    secret.write_text(pg.password + "\n")
    out = step(tmp_path, monkeypatch, storage_config(pg, file=str(secret)), env={})
    assert out.result.succeeded and out.result.storage.startswith("postgresql+psycopg://catalog:***@")
    assert [s.study_name for s in optuna.get_all_study_summaries(url(pg), include_best_trial=False)] == [STUDY]


def test_a_wrong_password_fails_without_revealing_it(pg: PostgresServer, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TuningError, match=r"cannot open tuning storage postgresql\+psycopg://catalog:\*\*\*@") as err:
        step(tmp_path, monkeypatch, storage_config(pg), env={"TUNING_DB_PASSWORD": "wrong-secret"})
    assert "wrong-secret" not in str(err.value) and "password authentication failed" in str(err.value)


def base(tmp_path: Path) -> LaunchSpec:
    return LaunchSpec.parse({"name": "tune-pg", "trainer_config": {"max_epochs": 6}, "data_uri": "unused",
                             "output_uri": str(tmp_path / "runs"), "world_size": 1})


def test_same_seed_same_trials_on_postgresql_as_in_memory(pg: PostgresServer, tmp_path: Path) -> None:
    spec = TuningSpec.parse(SPEC)
    on_pg, _ = run_tuning(spec, base(tmp_path / "pg"), SimulatedBackend(curve), storage=open_storage(url(pg)),
                          storage_label="pg", clock=ManualClock().clock())
    in_memory, _ = run_tuning(spec, base(tmp_path / "mem"), SimulatedBackend(curve),
                              storage=optuna.storages.InMemoryStorage(), storage_label="memory",
                              clock=ManualClock().clock())
    assert on_pg.trials.equals(in_memory.trials) and on_pg.best_params == in_memory.best_params


def test_a_terminated_step_resumes_its_postgresql_study(pg: PostgresServer, tmp_path: Path) -> None:
    spec = TuningSpec.parse(SPEC)

    class TerminatedOnFourthStart(SimulatedBackend):
        def create(self, spec: LaunchSpec) -> Any:
            if len(self.started) == 3:
                raise Terminated()  # the step's pod is deleted while launching
            return super().create(spec)

    first = TerminatedOnFourthStart(curve)
    with pytest.raises(Terminated):
        run_tuning(spec, base(tmp_path), first, storage=open_storage(url(pg)), storage_label="pg",
                   clock=ManualClock().clock())
    name = f"tune-pg-{spec.digest()}"
    before = optuna.load_study(study_name=name, storage=url(pg)).get_trials()
    assert len(before) == 4 and all(t.state.is_finished() for t in before)  # running ones recorded as killed
    killed = [t.number for t in before if t.user_attrs["result"]["state"] == "Killed"]
    assert 3 in killed and first.cancelled and set(first.cancelled) == {trial_name(name, n) for n in killed} - {
        trial_name(name, 3)}

    second = SimulatedBackend(curve)
    result, history = run_tuning(spec, base(tmp_path), second, storage=open_storage(url(pg)), storage_label="pg",
                                 clock=ManualClock().clock())
    assert history == [f"study attempt 1 {name}: resumed (last stop: none)"]
    assert result.trials.height == 6 and result.stop_reason is StopReason.MAX_TRIALS
    assert second.started == [trial_name(name, 4), trial_name(name, 5)]  # numbering continues in the same study
    assert sorted(result.trials["completion_order"].to_list()) == list(range(1, 7))


def test_retries_on_postgresql_adopt_running_trials_and_start_attempt_two_after_failure(
        pg: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {"on": False}

    def objective(cfg: dict[str, Any]) -> list[float]:
        if broken["on"]:
            raise JobFails("Master replica failed with exit code 137", epochs=1)
        return curve(cfg)

    cluster = Cluster(objective, metric="val_loss").install(monkeypatch)
    env, storage = {"TUNING_DB_PASSWORD": pg.password}, storage_config(pg)
    cluster.clock.on_sleep = lambda n: (_ for _ in ()).throw(SimulatedCrash("node lost")) if n == 4 else None
    with pytest.raises(SimulatedCrash):  # the step dies with two trials running
        step(tmp_path, monkeypatch, storage, cluster, env)
    cluster.clock.on_sleep = None
    running = sorted(cluster.operator.live())
    assert running == [trial_name(STUDY, 0), trial_name(STUDY, 1)]

    def break_once_adopted_done(_: int) -> None:  # the adopted trials finish; trials after them fail
        broken["on"] = broken["on"] or not set(running) & set(cluster.operator.live())

    cluster.clock.on_sleep = break_once_adopted_done
    with pytest.raises(TuningFailed, match="ExperimentMaxFailedTrialsReached"):
        step(tmp_path, monkeypatch, storage, cluster, env, out="retry-1")
    cluster.clock.on_sleep = None
    assert [n for n, _ in cluster.created][:2] == running  # adopted, not created again
    states = optuna.load_study(study_name=STUDY, storage=url(pg)).get_trials()
    assert [t.user_attrs["result"]["state"] for t in states][:2] == ["Succeeded", "Succeeded"]

    broken["on"] = False
    out = step(tmp_path, monkeypatch, storage, cluster, env, out="retry-2")
    assert out.result.study_name == f"{STUDY}-a2" and out.result.succeeded
    assert all(name not in live for name, live in cluster.created)  # never two live jobs for one trial
    assert cluster.operator.live() == []
    assert (tmp_path / "retry-2" / "logs.txt").read_text().startswith(
        f"== study attempt 1 {STUDY}: ended ExperimentMaxFailedTrialsReached; starting the next attempt\n")
