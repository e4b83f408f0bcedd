"""The local canary end to end with real KServe model servers on loopback and the local endpoint: a first
deployment, a candidate at N % whose share of live traffic is counted by model version, promotion, a candidate
that fails its smoke test and one that loses to the champion (both rolled back with the champion serving)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest

from components.data.breast_cancer import breast_cancer_events
from components.serving.canary.local import LocalServing
from components.serving.canary.rollout import run_rollout
from components.serving.lineage import Lineage
from components.serving.router import VERSION_HEADER
from components.serving.target import DeployConfig, Served
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.trainer import train

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(600)]
SERVICE = "bc-model"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    return breast_cancer_events()


def _train(root: Path, df: pl.DataFrame, name: str, **cfg: Any) -> Served:
    df.write_parquet(root / f"{name}.parquet")
    config = TrainerConfig.parse({"hidden_sizes": [16], "max_epochs": 15, "keep_checkpoints": 1, **cfg})
    train(config, str(root / f"{name}.parquet"), str(root / name), DistEnv(), data_version=name)
    lineage = Lineage.read(str(root / name / "model"))
    return Served(str(root / name / "model"), lineage.version, lineage.to_dict())


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, data: pl.DataFrame) -> dict[str, Served]:
    root = tmp_path_factory.mktemp("models")
    shuffled = data.with_columns(pl.Series("label", np.random.default_rng(3).permutation(data["label"].to_numpy())))
    return {"a": _train(root, data, "a", seed=1), "b": _train(root, data, "b", seed=2),
            "noise": _train(root, shuffled, "noise", seed=3, max_epochs=3),
            "fewer": _train(root, data.drop("mean_radius"), "fewer", seed=4)}


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[LocalServing]:
    cfg = DeployConfig.parse({"service": SERVICE, "canary_percent": 30, "local": {"home": str(tmp_path)},
                              "smoke": {"requests": 20}, "compare": {"rows": 300}, "traffic_probe": 100})
    backend = LocalServing(cfg)
    yield backend
    backend.stop()


def sample(data: pl.DataFrame) -> tuple[list[dict[str, Any]], list[int]]:
    rows = data.drop("entity_id", "event_timestamp", "label")
    return rows.to_dicts(), data["label"].cast(pl.Int64).to_list()


def rollout(backend: LocalServing, candidate: Served, data: pl.DataFrame):
    rows, labels = sample(data)
    return run_rollout(backend, candidate, backend.cfg, rows, labels)


def served_by(backend: LocalServing, data: pl.DataFrame, n: int = 20) -> set[str]:
    rows, _ = sample(data)
    url = f"{backend.endpoint()}/v1/models/{SERVICE}:predict"
    return {httpx.post(url, json={"instances": [r]}).headers[VERSION_HEADER] for r in rows[:n]}


def test_first_deployment_then_a_canary_at_30_percent_is_promoted(service: LocalServing, models: dict[str, Served],
                                                                  data: pl.DataFrame) -> None:
    first = rollout(service, models["a"], data)
    assert first.promoted and first.canary_percent == 100 and served_by(service, data) == {models["a"].version}
    second = rollout(service, models["b"], data)
    assert second.promoted, second.reasons
    a, b = models["a"].version, models["b"].version
    assert second.traffic == {a: 0.7, b: 0.3} or second.traffic == {b: 0.3, a: 0.7}  # live traffic, counted
    assert served_by(service, data) == {b}
    status = service.status()
    assert status["stable"]["version"] == b and status["stable"]["alive"] and status["candidate"] is None
    compare = next(s for s in second.states if s["state"] == "compare")
    assert compare["figures"]["candidate"] > 0.9 and compare["figures"]["stable"] > 0.9


def test_a_candidate_that_loses_to_the_champion_is_rolled_back(service: LocalServing, models: dict[str, Served],
                                                               data: pl.DataFrame) -> None:
    assert rollout(service, models["a"], data).promoted
    record = rollout(service, models["noise"], data)
    assert record.decision == "rolled_back" and "comparison: candidate auc" in record.reasons[0]
    assert served_by(service, data) == {models["a"].version} and service.canary() is None
    assert service.status()["stable"]["alive"]


def test_a_candidate_that_fails_its_smoke_test_is_rolled_back(service: LocalServing, models: dict[str, Served],
                                                              data: pl.DataFrame) -> None:
    assert rollout(service, models["a"], data).promoted
    record = rollout(service, models["fewer"], data)  # live requests carry a feature it does not take: 400s
    assert record.decision == "rolled_back" and "smoke test: 20 of 20 requests failed" in record.reasons[0]
    assert "mean_radius" in record.reasons[0]
    assert served_by(service, data) == {models["a"].version}


def test_a_failed_first_deployment_leaves_nothing_serving(service: LocalServing, models: dict[str, Served],
                                                          data: pl.DataFrame) -> None:
    record = rollout(service, models["fewer"], data)
    assert record.decision == "rolled_back" and service.stable() is None
    assert service.endpoint() == "" and not service.status()["router_alive"]
