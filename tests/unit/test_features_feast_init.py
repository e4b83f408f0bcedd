"""A repository made by ``feast init`` (the installed Feast's own template, generated offline here, never a
checked-in copy), unchanged, through the four steps the wrappers call: apply -> materialize -> training set ->
online check. The template's two feature views share feature names, it defines a Project object, on-demand
views, a push source and a label view, and its ``feature_store.yaml`` names its own project."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

import polars as pl
import pytest

from components._core.config import ConfigError
from components.features.repo import FeatureRepoError, opened_store
from components.features.step import apply_step, materialize_step, online_check_step, training_set_step
from tests.unit.test_features_apply import digest

PROJECT = "my_project"
SOURCE = "driver_hourly_stats_source"
VIEWS = ["driver_hourly_stats", "driver_hourly_stats_fresh"]


@functools.cache
def _generated() -> Path:
    """``feast init my_project`` once per test process (what the CLI runs: ``init_repo(name, "local")``)."""
    from feast.repo_operations import init_repo

    root = Path(tempfile.mkdtemp(prefix="feast-init-"))
    atexit.register(shutil.rmtree, root, True)
    init_repo(PROJECT, "local", str(root / PROJECT))
    repo = root / PROJECT / "feature_repo"
    assert (repo / "feature_store.yaml").is_file() and (repo / "data" / "driver_stats.parquet").is_file()
    return repo


def feast_init_repo(dest: Path) -> Path:
    """A fresh copy of the ``feast init`` repository (``NAME/feature_repo``) at ``dest``."""
    shutil.copytree(_generated(), dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def driver_stats(repo: Path) -> pl.DataFrame:
    return pl.read_parquet(repo / "data" / "driver_stats.parquet")


def labels_from(stats: pl.DataFrame, path: Path, rows: int = 120) -> pl.DataFrame:
    """Label rows at feature rows' own timestamps (pairs that occur once), so each joins its own row's values."""
    once = stats.filter(~pl.struct("driver_id", "event_timestamp").is_duplicated())
    labels = once.sample(rows, seed=1).select("driver_id", "event_timestamp", "conv_rate",
                                              label=(pl.col("conv_rate") > 0.5).cast(pl.Int64))
    labels.drop("conv_rate").write_parquet(path)
    return labels


def test_feast_init_repository_unchanged_through_the_four_steps(tmp_path: Path) -> None:
    repo = feast_init_repo(tmp_path / "feature_repo")
    before = digest(repo)
    applied = apply_step(str(repo), None, str(tmp_path / "applied"), source_name="", store_config="{}")
    assert applied.registered_views == ",".join(VIEWS) and applied.project == PROJECT
    assert digest(repo) == before  # the user's repository is never written

    loaded = materialize_step(str(tmp_path / "applied"), str(tmp_path / "loaded"), str(tmp_path / "report.json"))
    stats = driver_stats(repo)
    drivers = stats["driver_id"].n_unique()
    assert loaded.entities == drivers and loaded.rows == 2 * drivers
    assert json.loads((tmp_path / "report.json").read_text())["rows"] == loaded.rows
    latest = stats.filter(pl.col("event_timestamp") == pl.col("event_timestamp").max().over("driver_id"))
    with opened_store(tmp_path / "loaded") as store:
        online = store.get_online_features(
            features=[f"{v}:conv_rate" for v in VIEWS], full_feature_names=True,
            entity_rows=[{"driver_id": d} for d in sorted(latest["driver_id"].unique())]).to_dict()
    for driver, a, b in zip(online["driver_id"], *(online[f"{v}__conv_rate"] for v in VIEWS), strict=True):
        expected = latest.filter(pl.col("driver_id") == driver)["conv_rate"].to_list()
        assert a == b and a == pytest.approx(expected[0], rel=1e-6), driver

    labels = labels_from(stats, tmp_path / "labels")
    config = {"features": [f"{v}:{f}" for v in VIEWS for f in ("conv_rate", "avg_daily_trips")],
              "full_feature_names": True}
    built = training_set_step(str(tmp_path / "loaded"), str(tmp_path / "labels"), str(tmp_path / "train"),
                              json.dumps(config))
    train = pl.read_parquet(tmp_path / "train")
    assert built.rows == train.height == labels.height and built.rows_with_missing == 0
    assert train["label"].to_list() == labels["label"].to_list()  # every label row, in order
    for view in VIEWS:  # point in time: each label row gets its own feature row's value
        assert train[f"{view}__conv_rate"].to_list() == pytest.approx(labels["conv_rate"].to_list(), rel=1e-6)

    # Both views serve conv_rate, acc_rate, ...: requested by short name Feast refuses (FeatureNameCollisionError).
    checked = online_check_step(str(tmp_path / "loaded"), str(tmp_path / "labels"), str(tmp_path / "online.json"))
    assert checked.coverage == 1.0 and checked.metrics()["entities"] == drivers
    report = json.loads((tmp_path / "online.json").read_text())
    assert "driver_hourly_stats_fresh:conv_rate" in report["features"] and report["coverage"] == 1.0


def test_feature_services_with_on_demand_views_fail_clearly(tmp_path: Path) -> None:
    repo = feast_init_repo(tmp_path / "feature_repo")
    apply_step(str(repo), None, str(tmp_path / "applied"), source_name="")
    labels_from(driver_stats(repo), tmp_path / "labels", rows=5)
    with pytest.raises(FeatureRepoError, match="'transformed_conv_rate' is an on-demand feature view"):
        online_check_step(str(tmp_path / "applied"), str(tmp_path / "labels"), str(tmp_path / "o.json"),
                          '{"feature_service": "driver_activity_v1"}')
    with pytest.raises(FeatureRepoError, match="'transformed_conv_rate' is an on-demand feature view"):
        training_set_step(str(tmp_path / "applied"), str(tmp_path / "labels"), str(tmp_path / "t"),
                          '{"feature_service": "driver_activity_v2"}')
    assert not (tmp_path / "t").exists()


def test_source_name_points_the_repositorys_source_at_the_data(tmp_path: Path) -> None:
    repo = feast_init_repo(tmp_path / "feature_repo")
    recent = driver_stats(repo).filter(pl.col("driver_id") == 1001)
    recent.write_parquet(tmp_path / "only_1001")  # a KFP-style path without suffix
    apply_step(str(repo), str(tmp_path / "only_1001"), str(tmp_path / "applied"), source_name=SOURCE)
    loaded = materialize_step(str(tmp_path / "applied"), str(tmp_path / "loaded"), str(tmp_path / "r.json"))
    assert loaded.entities == 1  # both views read the overridden source (one via the push source)
    with pytest.raises(FeatureRepoError, match=r"data source 'events', which the repository does not define .*"
                                               r"driver_hourly_stats_source"):
        apply_step(str(repo), str(tmp_path / "only_1001"), str(tmp_path / "other"))  # the default source_name
    with pytest.raises(ConfigError, match="source_name='driver_hourly_stats_source' needs a data path"):
        apply_step(str(repo), None, str(tmp_path / "other"), source_name=SOURCE)
    assert not (tmp_path / "other").exists()


def test_the_store_config_overrides_the_repositorys_settings(tmp_path: Path) -> None:
    repo = feast_init_repo(tmp_path / "feature_repo")
    state = tmp_path / "shared_state"
    applied = apply_step(str(repo), None, str(tmp_path / "applied"), source_name="",
                         store_config=json.dumps({"project": "staging", "state_dir": str(state)}))
    assert applied.project == "staging"  # the template's Project object is renamed with it
    with opened_store(tmp_path / "applied") as store:
        assert [p.name for p in store.list_projects()] == ["staging"] and store.project == "staging"
    assert (state / "registry.db").is_file() and not (tmp_path / "applied" / "state").exists()
