"""The deploy and serving_champion wrappers' ``python_func`` on temporary artifacts, on the local backend with real
model servers: a blessed model is rolled out and becomes the champion; an unblessed one is refused."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp import dsl

from components._kfp import deploy, serving_champion
from components.data.breast_cancer import breast_cancer_events
from components.serving.canary.local import LocalServing
from components.serving.step import NotBlessed
from components.serving.target import DeployConfig
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.trainer import train
from tests.component.artifacts import artifact, outputs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture()
def trained(tmp_path: Path) -> tuple[dsl.Artifact, dsl.Artifact]:
    data = artifact(dsl.Dataset, tmp_path / "training_set")
    breast_cancer_events().write_parquet(data.path)
    train(TrainerConfig.parse({"hidden_sizes": [8], "max_epochs": 5, "keep_checkpoints": 1}), data.path,
          str(tmp_path / "run"), DistEnv())
    return artifact(dsl.Model, tmp_path / "run" / "model"), data


@pytest.fixture()
def config(tmp_path: Path) -> Iterator[str]:
    cfg = {"service": "wrapped", "local": {"home": str(tmp_path / "serving")}, "smoke": {"requests": 5},
           "traffic_probe": 10}
    yield json.dumps(cfg)
    LocalServing(DeployConfig.parse(cfg)).stop()


def blessing(tmp_path: Path, blessed: bool) -> dsl.Artifact:
    out = artifact(dsl.Artifact, tmp_path / f"blessing-{blessed}")
    Path(out.path).write_text(json.dumps({"blessed": blessed, "decision": "blessed" if blessed else "not blessed",
                                          "reasons": ["auc 0.99 >= 0.6"] if blessed else ["auc 0.40 < 0.6"]}))
    return out


def test_a_blessed_model_is_rolled_out_and_becomes_the_champion(tmp_path: Path, trained: tuple, config: str) -> None:
    model, data = trained
    assert serving_champion.python_func(config=config) == ""
    record = outputs(tmp_path, record=dsl.Artifact)["record"]
    promoted, serving_uri, endpoint = deploy.python_func(model=model, training_set=data,
                                                         blessing=blessing(tmp_path, True), record=record,
                                                         config=config, run_id="run-7", task="deploy")
    assert promoted is True and endpoint.startswith("http://127.0.0.1:")
    assert record.metadata["decision"] == "promoted" and record.metadata["sample_rows"] > 0
    doc = json.loads(Path(record.path).read_text())
    assert [s["state"] for s in doc["states"]] == ["deploy", "ready", "smoke", "traffic", "promote"]
    assert serving_champion.python_func(config=config) == serving_uri
    assert Path(serving_uri, "model_card.json").exists()  # the served copy, kept beside the service's state
    stable = LocalServing(DeployConfig.parse(config)).state()["stable"]
    assert stable["deployed_by"] == {"run_id": "run-7", "task": "deploy"}


def test_an_unblessed_model_is_never_deployed(tmp_path: Path, trained: tuple, config: str) -> None:
    model, data = trained
    record = outputs(tmp_path, record=dsl.Artifact)["record"]
    with pytest.raises(NotBlessed, match=r"not blessed.*auc 0.40 < 0.6"):
        deploy.python_func(model=model, training_set=data, blessing=blessing(tmp_path, False), record=record,
                           config=config)
    assert serving_champion.python_func(config=config) == "" and not Path(record.path).exists()
