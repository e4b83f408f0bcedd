"""The evaluation step on temporary folders with real tiny models: first deployment, a worse and a better
candidate than the champion, threshold failures, slices, and every refusal (bad config, a champion that cannot
score these rows, a training set that is not the candidate's)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import confusion_matrix

from components._core.artifacts import read_json
from components._core.config import ConfigError
from components.evaluation.errors import ChampionError, EvaluationError
from components.evaluation.step import EvaluationResult, evaluate_step
from components.training.data import split_indices
from components.training.model import load_model, predict_proba
from tests.unit.test_evaluation_models import Models, trained

THRESHOLDS_OFF = {"min_auc": None, "max_log_loss": None, "max_calibration_error": None}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained(tmp_path_factory)


def run(tmp_path: Path, model: str, data: str, config: Any = "{}",
        champion: str = "") -> tuple[EvaluationResult, dict[str, Any]]:
    result = evaluate_step(model, data, report_uri=str(tmp_path / "report.md"),
                           blessing_uri=str(tmp_path / "blessing.json"), config=config, champion_uri=champion)
    return result, read_json(str(tmp_path / "blessing.json"))


def heldout_positions(data: str, card: dict[str, Any]) -> np.ndarray:
    """The candidate's test rows as the trainer drew them (computed here independently of the step)."""
    tc = card["trainer_config"]
    labels = pl.read_parquet(data)["label"].to_numpy().astype(np.float32)
    return split_indices(labels, tc["val_fraction"], tc["test_fraction"], tc["seed"])[2]


def copy_model(src: str, dst: Path, **card_changes: Any) -> str:
    """A copy of a model folder whose card has ``card_changes`` (None removes a field)."""
    shutil.copytree(src, dst)
    card = json.loads((dst / "model_card.json").read_text())
    for key, value in card_changes.items():
        if value is None:
            card.pop(key)
        else:
            card[key] = value
    (dst / "model_card.json").write_text(json.dumps(card))
    return str(dst)


def test_first_deployment_is_blessed_on_the_thresholds_alone(models: Models, tmp_path: Path) -> None:
    config = {"slices": {"column": "site", "min_rows": 20}}
    result, doc = run(tmp_path, models.good, models.data, json.dumps(config))
    _, card = load_model(models.good)
    rows = heldout_positions(models.data, card)
    assert result.blessed and doc["blessed"] is True and doc["decision"] == "blessed"
    assert doc["champion"] is None and doc["comparison"] is None
    assert "no champion (first deployment)" in doc["reasons"][-1] and len(doc["reasons"]) == 5
    held = doc["heldout"]
    assert held["rows"] == len(rows) == card["metrics"]["rows"]["test"] == 86
    assert held["rows_sha256"] == hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()
    metrics = doc["candidate"]["metrics"]
    assert metrics["auc"] == pytest.approx(card["metrics"]["test_auc"], abs=2e-3)  # the trainer's test AUC
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["test_accuracy"])
    assert metrics["log_loss"] == pytest.approx(card["metrics"]["test_loss"], abs=1e-3)
    assert doc["candidate"]["lineage"]["weights_sha256"] == card["weights_sha256"]
    assert doc["candidate"]["lineage"]["trainer_config"] == card["trainer_config"]
    slices = doc["slices"]
    assert [s["value"] for s in slices["evaluated"]] == ["A", "B"]
    assert [s["value"] for s in slices["skipped"]] == ["C"] and slices["skipped"][0]["rows"] < 20
    assert sum(s["rows"] for s in slices["evaluated"] + slices["skipped"]) == 86
    report = (tmp_path / "report.md").read_text()
    assert report.startswith("# Evaluation: BLESSED") and "## Slices by `site`" in report
    assert "Skipped (fewer than 20 rows): `C`" in report and "No champion: first deployment" in report
    values = result.metrics()
    assert values["blessed"] == 1.0 and values["auc"] == metrics["auc"] and values["heldout_rows"] == 86
    assert not any(k.startswith("champion_") for k in values)


def test_confusion_matrix_and_roc_curve_are_the_held_out_rows(models: Models, tmp_path: Path) -> None:
    result, doc = run(tmp_path, models.weak, models.data, {"decision_threshold": 0.45, "roc_points": 10})
    model, card = load_model(models.weak)
    rows = heldout_positions(models.data, card)
    df = pl.read_parquet(models.data)[rows]
    p = predict_proba(model, card, df)
    expected = confusion_matrix(df["label"].to_numpy(), (p >= 0.45).astype(int), labels=[0, 1]).tolist()
    assert result.confusion_matrix() == (["0", "1"], expected) and doc["confusion_matrix"]["matrix"] == expected
    assert doc["confusion_matrix"]["decision_threshold"] == 0.45
    fpr, tpr, thresholds = result.roc_curve()
    assert 3 <= len(fpr) <= 10 and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thresholds[0] == 1.0 and thresholds == sorted(thresholds, reverse=True)


def test_a_candidate_worse_than_the_champion_is_not_blessed(models: Models, tmp_path: Path) -> None:
    config = {"thresholds": THRESHOLDS_OFF}
    result, doc = run(tmp_path, models.weak, models.data, config, champion=models.good)
    assert not result.blessed and doc["decision"] == "not blessed"
    assert len(doc["reasons"]) == 1 and doc["reasons"][0].startswith("auc: candidate")
    assert "worse than the champion beyond the tolerance" in doc["reasons"][0]
    c = doc["comparison"]
    assert c["metric"] == "auc" and c["difference"] < -0.01 and c["ci_low"] <= c["difference"] <= c["ci_high"]
    assert c["difference"] == pytest.approx(doc["candidate"]["metrics"]["auc"] - doc["champion"]["metrics"]["auc"])
    assert doc["champion"]["lineage"]["uri"] == models.good and doc["champion"]["metrics"]["auc"] > 0.97
    assert doc["notes"] == []  # same training set, same split: the champion never saw these rows either
    values = result.metrics()
    assert values["blessed"] == 0.0 and values["auc_difference"] == c["difference"]
    assert values["champion_auc"] == doc["champion"]["metrics"]["auc"]
    assert result.to_metadata()["blessed"] is False and result.to_metadata()["champion_uri"] == models.good
    assert "NOT BLESSED" in (tmp_path / "report.md").read_text()


def test_a_model_trained_on_shuffled_labels_loses_to_the_champion(models: Models, tmp_path: Path) -> None:
    result, doc = run(tmp_path, models.good, models.data, champion=models.good)  # itself: not worse, blessed
    assert result.blessed and doc["comparison"]["difference"] == 0.0 == doc["comparison"]["ci_low"]
    result, doc = run(tmp_path, models.shuffled, models.data, {"thresholds": THRESHOLDS_OFF}, champion=models.good)
    assert not result.blessed and doc["candidate"]["metrics"]["auc"] < 0.75
    assert doc["comparison"]["ci_high"] < 0


def test_a_candidate_better_than_the_champion_is_blessed(models: Models, tmp_path: Path) -> None:
    result, doc = run(tmp_path, models.good, models.data, champion=models.weak)
    assert result.blessed and doc["comparison"]["ci_low"] > 0
    assert doc["reasons"][-1].startswith("auc: candidate") and "not worse than the champion" in doc["reasons"][-1]
    result, doc = run(tmp_path, models.good, models.data, champion=models.shuffled)
    assert result.blessed and "trained on other data or another split" in doc["notes"][0]
    older = copy_model(models.weak, tmp_path / "older", trainer_config=None)  # a card without its split: a note
    result, doc = run(tmp_path, models.good, models.data, champion=older)
    assert result.blessed and "or are unknown" in doc["notes"][0]


def test_log_loss_comparison_mirrors_the_rule(models: Models, tmp_path: Path) -> None:
    config = {"comparison": {"metric": "log_loss", "tolerance": 0.0}, "thresholds": THRESHOLDS_OFF}
    result, doc = run(tmp_path, models.weak, models.data, config, champion=models.good)
    c = doc["comparison"]
    assert not result.blessed and c["higher_is_better"] is False and c["difference"] > 0 and c["ci_high"] > 0
    result, doc = run(tmp_path, models.good, models.data, config, champion=models.weak)
    assert result.blessed and doc["comparison"]["ci_high"] < 0


def test_threshold_failures_are_not_blessed_and_say_why(models: Models, tmp_path: Path) -> None:
    config = {"thresholds": {"min_auc": 0.99, "max_log_loss": 0.3, "min_rows": 500, "max_calibration_error": None}}
    result, doc = run(tmp_path, models.weak, models.data, json.dumps(config))
    assert not result.blessed
    failed = [c["name"] for c in doc["checks"] if not c["passed"]]
    assert failed == ["min_rows", "min_auc", "max_log_loss"]
    assert doc["reasons"][0] == "held-out rows 86 < min_rows 500"
    assert doc["reasons"][1].startswith("auc 0.") and doc["reasons"][1].endswith("< min_auc 0.99")
    assert doc["thresholds"]["min_auc"] == 0.99 and doc["thresholds"]["max_calibration_error"] is None
    assert "max_calibration_error" not in {c["name"] for c in doc["checks"]}  # a limit turned off is no check
    assert "- FAIL: held-out rows 86 < min_rows 500" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(("config", "field"), [
    ('{"comparison": {"confidence": 2}}', r"EvaluationConfig\.comparison\.confidence"),
    ('{"thresholds": {"max_logloss": 0.5}}', r"EvaluationConfig\.thresholds\.max_logloss"),
    ('{"slices": "site"}', r"EvaluationConfig\.slices"),
    ("{not json", "not valid JSON"),
])
def test_a_bad_config_names_the_field_and_writes_nothing(models: Models, tmp_path: Path, config: str,
                                                         field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        run(tmp_path, models.good, models.data, config)
    assert not (tmp_path / "blessing.json").exists() and not (tmp_path / "report.md").exists()


def test_a_champion_that_cannot_score_these_rows_fails_naming_what_is_missing(models: Models,
                                                                             tmp_path: Path) -> None:
    with pytest.raises(ChampionError, match=r"champion model at .* cannot score the held-out rows: .*\['extra'\]"):
        run(tmp_path, models.good, models.data, champion=models.extra_feature)
    with pytest.raises(ChampionError, match=r"champion model at '.*nowhere' cannot be loaded: FileNotFoundError"):
        run(tmp_path, models.good, models.data, champion=str(tmp_path / "nowhere"))
    relabelled = copy_model(models.good, tmp_path / "relabelled", label_column="malignant")
    with pytest.raises(ChampionError, match="predicts 'malignant', the candidate 'label'"):
        run(tmp_path, models.good, models.data, champion=relabelled)
    tampered = copy_model(models.good, tmp_path / "tampered", weights_sha256="0" * 64)
    with pytest.raises(ChampionError, match="weights do not match the digest"):
        run(tmp_path, models.good, models.data, champion=tampered)
    assert not (tmp_path / "blessing.json").exists()


def test_a_training_set_that_is_not_the_candidates_is_refused(models: Models, tmp_path: Path) -> None:
    fewer = tmp_path / "fewer.parquet"
    pl.read_parquet(models.data).head(500).write_parquet(fewer)
    with pytest.raises(EvaluationError, match=r"is not the one the candidate was trained on"):
        run(tmp_path, models.good, str(fewer))
    unlabelled = tmp_path / "unlabelled.parquet"
    pl.read_parquet(models.data).drop("label").write_parquet(unlabelled)
    with pytest.raises(EvaluationError, match=r"label column 'label' .* is not in the training set"):
        run(tmp_path, models.good, str(unlabelled))
    no_config = copy_model(models.good, tmp_path / "no-config", trainer_config=None)
    with pytest.raises(EvaluationError, match="candidate model card has no trainer_config"):
        run(tmp_path, no_config, models.data)
    with pytest.raises(EvaluationError, match=r"slice column 'country' is not in the training set"):
        run(tmp_path, models.good, models.data, {"slices": {"column": "country"}})
