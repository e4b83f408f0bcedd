"""The monitoring components' logic on a real tiny model with its bundle: which model is watched (and what fails
clearly), and the retrain's training set (every row accounted for, a batch that does not fit named)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from components.drift.bundle import BundleError, write_bundle
from components.monitoring.retrain_set import RetrainSetError, extend_training_set
from components.monitoring.watched import NothingServing, watched_model
from tests.unit.drift_models import DriftModel, build, events

CONTRACT = {"columns": [{"name": "label", "dtype": "int64", "nullable": False}]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> DriftModel:
    root = tmp_path_factory.mktemp("monitoring")
    model = build(root)
    write_bundle(model.model, model.training, contract=CONTRACT)
    return model


def local(tmp_path: Path) -> dict[str, object]:
    return {"service": "watched", "local": {"home": str(tmp_path / "serving")}}


def test_a_given_model_is_watched_with_its_contract(trained: DriftModel, tmp_path: Path) -> None:
    out = watched_model(local(tmp_path), model_uri=trained.model)
    assert out.model_uri == trained.model and json.loads(out.contract) == CONTRACT


def test_nothing_serving_and_no_uri_fails_naming_the_target(tmp_path: Path) -> None:
    with pytest.raises(NothingServing, match="no model is serving at the local target \\(service 'watched'\\)"):
        watched_model(local(tmp_path))


def test_a_model_without_bundle_or_contract_fails_naming_it(trained: DriftModel, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(trained.model, bare)
    shutil.rmtree(bare / "monitoring")
    with pytest.raises(BundleError, match="has no monitoring bundle"):
        watched_model(local(tmp_path), model_uri=str(bare))
    write_bundle(str(bare), trained.training)  # no contract
    with pytest.raises(BundleError, match="carries no validation contract"):
        watched_model(local(tmp_path), model_uri=str(bare))


def test_the_retrain_set_is_the_old_set_then_the_batch_with_repeats_counted(trained: DriftModel,
                                                                           tmp_path: Path) -> None:
    new = events(500, seed=9).with_columns(extra=pl.lit("ignored"))
    repeated = trained.training.head(20).with_columns(extra=pl.lit("x"))
    batch = pl.concat([new, repeated.select(new.columns)])
    batch.write_parquet(tmp_path / "batch.parquet")
    out = extend_training_set(trained.model, str(tmp_path / "batch.parquet"), str(tmp_path / "out.parquet"))
    written = pl.read_parquet(tmp_path / "out.parquet")
    assert (out.rows_previous, out.rows_batch, out.rows_duplicate) == (3_000, 520, 20)
    assert written.height == out.rows == 3_500 and written.columns == trained.training.columns
    assert written.head(3_000).equals(trained.training)
    assert out.to_metadata()["rows_duplicate_dropped"] == 20


def test_a_batch_that_does_not_fit_is_named(trained: DriftModel, tmp_path: Path) -> None:
    batch = tmp_path / "batch.parquet"
    events(50, seed=3).drop("country").write_parquet(batch)
    with pytest.raises(RetrainSetError, match="lacks the training set's columns \\['country'\\]"):
        extend_training_set(trained.model, str(batch), str(tmp_path / "out.parquet"))
    events(50, seed=3).with_columns(amount=pl.lit("lots")).write_parquet(batch)
    with pytest.raises(RetrainSetError, match="column 'amount' \\(String\\) does not convert"):
        extend_training_set(trained.model, str(batch), str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()  # nothing half-written


def test_a_missing_old_training_set_is_named(trained: DriftModel, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(trained.model, moved)
    card = json.loads((moved / "model_card.json").read_text())
    card["data_uri"] = str(tmp_path / "gone.parquet")
    (moved / "model_card.json").write_text(json.dumps(card))
    events(10, seed=2).write_parquet(tmp_path / "batch.parquet")
    with pytest.raises(RetrainSetError, match=r"cannot be read at .*gone\.parquet"):
        extend_training_set(str(moved), str(tmp_path / "batch.parquet"), str(tmp_path / "out.parquet"))
