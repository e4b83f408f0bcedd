"""The monitoring bundle: written from a real trained model's training rows (bounded, seeded sample with the
model's predictions, roles from the model card, the contract passed through) and read back; a model without one
fails naming the missing file and the folder."""

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from components.drift.bundle import PREDICTION, BundleError, read_bundle, write_bundle
from components.training.model import load_model, predict_proba
from tests.unit.drift_models import DriftModel, build


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> DriftModel:
    return build(tmp_path_factory.mktemp("drift-bundle"))


def test_the_bundle_holds_the_features_the_predictions_and_the_roles(trained: DriftModel) -> None:
    bundle = read_bundle(trained.model)
    model, card = load_model(trained.model)
    features = [f["name"] for f in card["features"]]
    assert bundle.reference.columns == [*features, PREDICTION]
    assert bundle.reference.height == trained.training.height == bundle.info["source_rows"]
    proba = predict_proba(model, card, bundle.reference.select(features))
    np.testing.assert_allclose(bundle.reference[PREDICTION].to_numpy(), proba)
    roles = bundle.roles
    assert roles.numerical == ["amount", "n_items", "session_minutes", "account_age_days"]
    assert roles.categorical == ["country", "channel", "device", "tier"]  # tier: an integer with 4 values
    assert roles.prediction == PREDICTION and bundle.contract is None
    assert bundle.info["weights_sha256"] == card["weights_sha256"] and bundle.info["max_rows"] == 20_000
    assert bundle.sample_note() == "all 3,000 rows"


def test_the_reference_is_a_bounded_seeded_sample_and_the_contract_is_kept(trained: DriftModel,
                                                                          tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(trained.model, model, ignore=shutil.ignore_patterns("monitoring"))
    contract = {"columns": {"amount": {"type": "float", "min": 0}}}
    first = write_bundle(str(model), trained.training, contract=contract, max_rows=500, seed=3)
    again = read_bundle(str(model))
    assert first.reference.height == again.reference.height == 500
    assert again.reference.equals(first.reference) and again.contract == contract
    assert again.sample_note() == "500 of 3,000 rows (seeded sample, bound 500, seed 3)"
    other = write_bundle(str(model), trained.training, max_rows=500, seed=4)
    assert not other.reference.equals(first.reference)
    rows = trained.training.with_row_index().join(first.reference.drop(PREDICTION).with_row_index("i"),
                                                  on=[c for c in first.reference.columns if c != PREDICTION])
    assert rows.height == 500 and rows["index"].is_sorted()  # real training rows, in table order


def test_a_model_without_a_bundle_fails_naming_the_file_and_the_folder(trained: DriftModel,
                                                                     tmp_path: Path) -> None:
    model = tmp_path / "bare"
    shutil.copytree(trained.model, model, ignore=shutil.ignore_patterns("monitoring"))
    with pytest.raises(BundleError, match=rf"model folder '{model}' has no monitoring bundle: "
                                          r"monitoring/reference\.parquet is missing"):
        read_bundle(str(model))


def test_a_training_set_without_the_models_features_is_refused(trained: DriftModel, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(trained.model, model, ignore=shutil.ignore_patterns("monitoring"))
    with pytest.raises(BundleError, match=r"training set lacks the model's feature columns \['country'\]"):
        write_bundle(str(model), trained.training.drop("country"))
    with pytest.raises(BundleError, match="has no rows"):
        write_bundle(str(model), trained.training.head(0))
    assert not (model / "monitoring").exists()
    assert pl.read_parquet(Path(trained.model) / "monitoring" / "reference.parquet").height == 3_000
