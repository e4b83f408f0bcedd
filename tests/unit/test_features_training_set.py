"""Training set inputs: bad entity tables and feature references fail before anything is written."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from components._core.config import ConfigError
from components.features.repo import FeatureRepoError
from components.features.training_set import TrainingSetConfig, build_training_set
from tests.unit.test_features_suite import DAY, T0, FeatureSuite, three_versions


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    return FeatureSuite().apply(tmp_path_factory.mktemp("ts"), {}, three_versions(range(1, 4)))


def labels(tmp_path: Path, **columns: list) -> str:
    data = {"entity_id": [1, 2, 3], "event_timestamp": [T0 + 3 * DAY] * 3, "label": [0, 1, 0], **columns}
    path = tmp_path / "labels.parquet"
    pl.DataFrame({k: v for k, v in data.items() if v is not None}).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("columns,config,message", [
    ({}, {"features": ["nope:amount"]}, "feature view 'nope' is not registered"),
    ({}, {"features": ["activity:nope"]}, "feature view 'activity' has no feature 'nope'"),
    ({"entity_id": None, "customer": [1, 2, 3]}, {}, "no entity join key column 'entity_id'"),
    ({"event_timestamp": ["2026-01-13T00:00:00"] * 3}, {}, "timestamp column 'event_timestamp' is String"),
    ({"event_timestamp": [1, 2, 3]}, {}, "timestamp column 'event_timestamp' is Int64"),
    ({"entity_id": [1, None, 3]}, {}, "column 'entity_id' of the entity table has 1 nulls"),
    ({"label": None}, {}, "no label column 'label'"),
    ({}, {"feature_service": "absent"}, "feature service 'absent' is not registered"),
    ({}, {"features": ["activity:amount"], "max_missing_share": 0.0, "timestamp_column": "event_timestamp"},
     None),
    ({}, {"feature_service": "training", "max_missing_share": 0.0}, None),
])
def test_bad_inputs_fail_clearly_and_write_nothing(
        tmp_path: Path, repo: str, columns: dict, config: dict, message: str | None) -> None:
    out = tmp_path / "train.parquet"
    if message is None:  # the control case: the same call with good input succeeds
        assert build_training_set(repo, labels(tmp_path, **columns), str(out), config).rows == 3
        assert out.exists()
        return
    with pytest.raises(FeatureRepoError, match=message):
        build_training_set(repo, labels(tmp_path, **columns), str(out), config)
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_missing_share_gate_and_renamed_timestamp(tmp_path: Path, repo: str) -> None:
    path = tmp_path / "l.parquet"
    pl.DataFrame({"entity_id": [1, 99], "label_time": [T0 + DAY, T0 + DAY], "y": [1, 0]}).write_parquet(path)
    cfg = {"timestamp_column": "label_time", "label_columns": ["y"], "full_feature_names": True}
    result = build_training_set(repo, str(path), str(tmp_path / "ok.parquet"), cfg)
    df = pl.read_parquet(tmp_path / "ok.parquet")
    assert df.columns[:3] == ["entity_id", "label_time", "y"] and "activity__amount" in df.columns
    assert df["activity__amount"].to_list() == [101.0, None] and result.rows_with_missing == 1
    assert df.schema["activity__n_items"] == pl.Int64  # missing values did not turn ints into floats
    with pytest.raises(FeatureRepoError, match="1 of 2 rows miss a feature"):
        build_training_set(repo, str(path), str(tmp_path / "no.parquet"), {**cfg, "max_missing_share": 0.4})
    assert not (tmp_path / "no.parquet").exists()


def test_config_rejects_malformed_references() -> None:
    with pytest.raises(ConfigError, match="not 'view:feature'"):
        TrainingSetConfig.parse({"features": ["amount"]})
    with pytest.raises(ConfigError, match="features or feature_service"):
        TrainingSetConfig.parse({"features": ["a:b"], "feature_service": "svc"})
