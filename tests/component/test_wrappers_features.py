"""The four feature wrappers' ``python_func`` on temporary artifacts, as KFP's executor calls them, on the
default (embedded SQLite) store: the demo repository, a ``feast init`` repository unchanged, and a user's
repository whose feature_store.yaml says ``project: my_project`` and the duckdb offline store."""

import json
from pathlib import Path

import polars as pl
import pytest
from kfp import dsl

from components._core.config import ConfigError
from components._kfp import feature_apply, feature_materialize, feature_online_check, feature_training_set
from components.data.events import EventsConfig, generate_events
from components.features.repo import FeatureRepoError
from tests.component.artifacts import artifact, outputs
from tests.unit.test_features_apply import digest
from tests.unit.test_features_feast_init import PROJECT, SOURCE, VIEWS, driver_stats, feast_init_repo, labels_from


def dataset(path: Path, frame: pl.DataFrame | None = None) -> dsl.Artifact:
    if frame is not None:
        frame.write_parquet(path)
    return artifact(dsl.Dataset, path)


def run_all(tmp_path: Path, data: dsl.Artifact, labels: dsl.Artifact, *, repo: str, source_name: str,
            store_config: str = "{}", training_config: str, check_config: str = "{}") -> dict:
    """apply -> materialize -> training set -> online check through the wrappers; every output by name."""
    out = outputs(tmp_path, feature_store=dsl.Artifact, materialized=dsl.Artifact, report=dsl.Artifact,
                  metrics=dsl.Metrics, training_set=dsl.Dataset, check_report=dsl.Artifact, check_metrics=dsl.Metrics)
    got: dict = {"out": out}
    got["views"] = feature_apply.python_func(data=data, feature_store=out["feature_store"], repo=repo,
                                             source_name=source_name, store_config=store_config)
    applied = digest(Path(out["feature_store"].path))
    got["rows"] = feature_materialize.python_func(feature_store=out["feature_store"], data=data,
                                                  materialized=out["materialized"], report=out["report"],
                                                  metrics=out["metrics"], config='{"mode": "incremental"}')
    assert digest(Path(out["feature_store"].path)) == applied  # the input artifact is never changed
    got["train_rows"] = feature_training_set.python_func(feature_store=out["materialized"], data=data, labels=labels,
                                                         training_set=out["training_set"], config=training_config)
    got["coverage"] = feature_online_check.python_func(feature_store=out["materialized"], entities=labels,
                                                       report=out["check_report"], metrics=out["check_metrics"],
                                                       config=check_config)
    return got


def test_demo_repository_through_the_wrappers(tmp_path: Path) -> None:
    events = generate_events(EventsConfig(rows=300, entities=40, days=10, seed=5))
    data = dataset(tmp_path / "valid", events)
    got = run_all(tmp_path, data, data, repo="demo", source_name="events",
                  training_config='{"feature_service": "training"}')
    out = got["out"]
    assert got["views"] == "activity,profile" and out["feature_store"].metadata["project"] == "catalog"
    assert out["feature_store"].metadata["online"] == "sqlite"
    entities = events["entity_id"].n_unique()
    assert got["rows"] == 2 * entities and out["materialized"].metadata["entities"] == entities
    assert out["metrics"].metadata["rows"] == got["rows"] and "mode" not in out["metrics"].metadata  # numbers only
    assert json.loads(Path(out["report"].path).read_text())["rows"] == got["rows"]
    train = pl.read_parquet(out["training_set"].path)
    assert got["train_rows"] == train.height == events.height and out["training_set"].metadata["rows"] == events.height
    assert (train["amount"] == events["amount"]).all()
    assert got["coverage"] == 1.0 and out["check_metrics"].metadata["coverage"] == 1.0
    assert out["check_metrics"].metadata["latency_p99_ms"] > 0


def test_feast_init_repository_through_the_wrappers(tmp_path: Path) -> None:
    repo = feast_init_repo(tmp_path / "feature_repo")
    before = digest(repo)
    stats = driver_stats(repo)
    labels = labels_from(stats, tmp_path / "labels")
    unused = dataset(tmp_path / "unused", pl.DataFrame({"x": [1]}))  # source_name="": data is not read
    config = json.dumps({"features": [f"{v}:conv_rate" for v in VIEWS], "full_feature_names": True})
    got = run_all(tmp_path, unused, artifact(dsl.Dataset, tmp_path / "labels"), repo=str(repo), source_name="",
                  training_config=config)
    assert got["views"] == ",".join(VIEWS) and got["out"]["feature_store"].metadata["project"] == PROJECT
    assert got["rows"] == 2 * stats["driver_id"].n_unique() and got["train_rows"] == labels.height
    assert got["coverage"] == 1.0 and digest(repo) == before


def duckdb_repo(tmp_path: Path) -> Path:
    """A user's repository: the feast init definitions and data, their feature_store.yaml on the duckdb store."""
    repo = feast_init_repo(tmp_path / "user_repo")
    (repo / "feature_store.yaml").write_text(
        "project: my_project\nprovider: local\nregistry: data/registry.db\n"
        "online_store:\n  type: sqlite\n  path: data/online_store.db\n"
        "offline_store:\n  type: duckdb\nentity_key_serialization_version: 3\n")
    return repo


def test_my_project_on_duckdb_through_the_wrappers(tmp_path: Path) -> None:
    repo = duckdb_repo(tmp_path)
    stats = driver_stats(repo)
    out = outputs(tmp_path / "refused", feature_store=dsl.Artifact)
    # The template's data has nanosecond timestamps, which the duckdb store cannot cast: said at apply time.
    with pytest.raises(FeatureRepoError, match=r"column 'event_timestamp' is Datetime\(time_unit='ns'.*microsecond"):
        feature_apply.python_func(data=artifact(dsl.Dataset, tmp_path / "none"), feature_store=out["feature_store"],
                                  repo=str(repo), source_name="", store_config="{}")
    assert not Path(out["feature_store"].path).exists()
    # The pipeline's way: the data set, written with microsecond timestamps, feeds the repository's source.
    micro = stats.with_columns(pl.col("event_timestamp", "created").dt.cast_time_unit("us"))
    data = dataset(tmp_path / "valid", micro)
    labels = labels_from(micro, tmp_path / "labels")
    config = json.dumps({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"]})
    got = run_all(tmp_path, data, artifact(dsl.Dataset, tmp_path / "labels"), repo=str(repo), source_name=SOURCE,
                  training_config=config, check_config='{"features": ["driver_hourly_stats:conv_rate"]}')
    meta = got["out"]["feature_store"].metadata
    assert (meta["project"], meta["offline"], meta["online"]) == ("my_project", "duckdb", "sqlite")
    train = pl.read_parquet(got["out"]["training_set"].path)
    assert train["conv_rate"].to_list() == pytest.approx(labels["conv_rate"].to_list(), rel=1e-6)
    assert got["rows"] == 2 * stats["driver_id"].n_unique() and got["coverage"] == 1.0


@pytest.mark.parametrize("store_config,message", [
    ('{"online": "cassandra"}', "FeatureStoreConfig.online"),
    ('{"online": ', "invalid FeatureStoreConfig: not valid JSON"),
    ('{"redis_password": "hunter2"}', "FeatureStoreConfig.redis_password"),  # a literal password has no place
])
def test_bad_store_config_fails_naming_the_field_and_writes_nothing(tmp_path: Path, store_config: str,
                                                                    message: str) -> None:
    out = outputs(tmp_path, feature_store=dsl.Artifact)
    data = dataset(tmp_path / "valid", generate_events(EventsConfig(rows=20, entities=5)))
    with pytest.raises(ConfigError, match=message) as err:
        feature_apply.python_func(data=data, feature_store=out["feature_store"], store_config=store_config)
    assert "hunter2" not in str(err.value)
    assert not Path(out["feature_store"].path).exists()


def test_bad_step_configs_fail_naming_the_field(tmp_path: Path) -> None:
    data = dataset(tmp_path / "valid", generate_events(EventsConfig(rows=50, entities=5)))
    out = outputs(tmp_path, feature_store=dsl.Artifact, materialized=dsl.Artifact, report=dsl.Artifact,
                  metrics=dsl.Metrics, training_set=dsl.Dataset)
    feature_apply.python_func(data=data, feature_store=out["feature_store"])
    with pytest.raises(ConfigError, match=r"MaterializeConfig\.batch_size"):
        feature_materialize.python_func(feature_store=out["feature_store"], data=data, materialized=out["materialized"],
                                        report=out["report"], metrics=out["metrics"], config='{"batch_size": 0}')
    with pytest.raises(ConfigError, match=r"TrainingSetConfig\.features"):
        feature_training_set.python_func(feature_store=out["feature_store"], data=data, labels=data,
                                         training_set=out["training_set"], config='{"features": ["amount"]}')
    assert not Path(out["materialized"].path).exists() and not Path(out["training_set"].path).exists()
