"""The drift step on a real trained model and its bundle: verdicts on an unshifted and a shifted batch, prediction
drift, the result document and the report's stated bound, the row bounds, a column subset, and bad inputs that
fail naming the column (missing, wrong type, empty batch, unknown config names)."""

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from components._core.artifacts import read_json
from components._core.config import ConfigError
from components.drift.bundle import BundleError
from components.drift.stats import DriftInputError
from components.drift.step import DriftResult, drift_step
from tests.unit.drift_models import LATER, DriftModel, batch, build, events


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> DriftModel:
    return build(tmp_path_factory.mktemp("drift-step"))


def _run(model: str, current: str, tmp_path: Path, config: object = "{}") -> DriftResult:
    return drift_step(model, current, config=config,  # type: ignore[arg-type]
                      report_uri=str(tmp_path / "report.html"), result_uri=str(tmp_path / "result.json"))


def test_an_unshifted_batch_does_not_drift_and_a_shifted_one_does(trained: DriftModel, tmp_path: Path) -> None:
    calm = _run(trained.model, batch(tmp_path, "calm", events(4_000, seed=5, start=LATER)), tmp_path / "calm")
    assert not calm.drifted and calm.drifted_share < 0.5
    assert calm.prediction is not None and not calm.prediction.drifted
    k = len(calm.drifted_columns)
    assert calm.verdict() == f"no drift: {k} of 8 feature columns drifted (share {k / 8:.2f} < drift_share 0.5)"
    moved = _run(trained.model, batch(tmp_path, "moved", events(4_000, seed=5, shift=1.5, start=LATER)),
                 tmp_path / "moved")
    assert moved.drifted and {"amount", "session_minutes", "n_items", "country"} <= set(moved.drifted_columns)
    assert moved.prediction is not None and moved.prediction.drifted
    assert {c.method for c in moved.columns} == {"wasserstein", "jensenshannon"}  # 3,000-row reference


def test_the_result_document_metrics_and_metadata(trained: DriftModel, tmp_path: Path) -> None:
    result = _run(trained.model, batch(tmp_path, "b", events(4_000, seed=6, shift=1.5, start=LATER)), tmp_path)
    doc = read_json(str(tmp_path / "result.json"))
    assert doc["drifted"] is True and doc["drifted_columns"] == result.drifted_columns
    assert doc["rule"] == "drifted when drifted_share >= drift_share (feature columns only)"
    assert doc["drifted_share"] == pytest.approx(len(result.drifted_columns) / 8) and doc["columns_checked"] == 8
    assert doc["rows"]["current"] == {"used": 4_000, "available": 4_000}
    assert doc["rows"]["reference"]["used"] == 3_000 and doc["rows"]["reference"]["sample"] == "all 3,000 rows"
    assert doc["bounds"] == {"max_rows": None, "report_rows": 5_000, "seed": 0, "reference_max_rows": 20_000}
    assert doc["prediction"]["column"] == "prediction" and doc["methods"]["prediction"] == "wasserstein"
    row = next(r for r in doc["columns"] if r["column"] == "amount")
    assert set(row) >= {"method", "score", "threshold", "drifted", "reference_rows", "current_rows", "null_share"}
    metrics = result.metrics()
    assert metrics["drift_score.amount"] == row["score"] and metrics["drifted.amount"] == 1.0
    assert metrics["drifted_share"] == doc["drifted_share"]
    assert metrics["drifted_columns"] == len(doc["drifted_columns"])
    assert metrics["drifted"] == 1.0 and "drift_score.prediction" in metrics
    meta = result.to_metadata()
    assert meta["drifted"] is True and meta["drifted_columns"] == ", ".join(result.drifted_columns)
    assert meta["prediction_drifted"] is True and meta["current_rows"] == 4_000
    k = len(result.drifted_columns)
    assert meta["summary"] == (f"drifted: {k} of 8 feature columns drifted (share {k / 8:.2f} >= drift_share 0.5): "
                               + ", ".join(result.drifted_columns))
    json.dumps(meta, allow_nan=False)


def test_the_report_states_its_bound_and_the_verdict(trained: DriftModel, tmp_path: Path) -> None:
    result = _run(trained.model, batch(tmp_path, "b", events(4_000, seed=7, start=LATER)), tmp_path,
                  {"report_rows": 500, "seed": 2})
    page = (tmp_path / "report.html").read_text()
    assert "report_rows=500 (seed 2): current 500 of 4,000 rows (seeded sample, bound 500, seed 2); reference " \
           "500 of 3,000 rows" in page
    assert f"Drift check verdict: {'DRIFTED' if result.drifted else 'NOT DRIFTED'}" in page
    assert "computed on current all 4,000 rows and reference all 3,000 rows" in page
    assert page.count("drift-check-banner") == 1 and "Value Drift for column prediction" in page
    assert read_json(str(tmp_path / "result.json"))["report"]["current_rows"] == 500


def test_max_rows_bounds_the_verdicts_sample_and_says_so(trained: DriftModel, tmp_path: Path) -> None:
    path = batch(tmp_path, "b", events(4_000, seed=8, start=LATER))
    first = _run(trained.model, path, tmp_path / "1", {"max_rows": 1_000, "seed": 5})
    again = _run(trained.model, path, tmp_path / "2", {"max_rows": 1_000, "seed": 5})
    assert first.columns == again.columns  # same seed, same rows, same scores
    assert {(c.reference_rows, c.current_rows) for c in first.columns} == {(1_000, 1_000)}
    assert {c.method for c in first.columns} <= {"ks", "chisquare", "z"}  # a 1,000-row reference: p-value tests
    assert first.document["bounds"]["max_rows"] == 1_000 and first.document["rows"]["current"]["used"] == 1_000


def test_a_column_subset_and_per_column_settings(trained: DriftModel, tmp_path: Path) -> None:
    path = batch(tmp_path, "b", events(2_000, seed=9, shift=1.5, start=LATER))
    result = _run(trained.model, path, tmp_path, {"columns": ["amount", "channel"], "drift_share": 0.5,
                                                  "per_column_method": {"amount": "psi", "prediction": "ks"},
                                                  "per_column_threshold": {"channel": 0.5}})
    assert [(c.column, c.method, c.threshold) for c in result.columns] == [
        ("amount", "psi", 0.1), ("channel", "jensenshannon", 0.5)]
    assert result.prediction is not None and result.prediction.method == "ks"
    assert result.drifted_columns == ["amount"] and result.drifted  # 1 of 2 >= 0.5: at the share drifts


def test_an_all_null_current_column_is_drifted_and_left_out_of_the_report(trained: DriftModel,
                                                                          tmp_path: Path) -> None:
    df = events(2_000, seed=10, start=LATER).with_columns(session_minutes=pl.lit(None, dtype=pl.Float64),
                                                          device=pl.lit(None, dtype=pl.String))
    result = _run(trained.model, batch(tmp_path, "b", df), tmp_path)
    nulls = {c.column: c for c in result.columns if c.score is None}
    assert set(nulls) == {"session_minutes", "device"}
    assert all(c.drifted and c.null_share == 1.0 and "every current value is missing" in c.note
               for c in nulls.values())
    page = (tmp_path / "report.html").read_text()
    assert "<li>session_minutes: no current values</li>" in page and "<li>device: no current values</li>" in page
    assert "drift_score.session_minutes" not in result.metrics() and result.metrics()["drifted.device"] == 1.0


@pytest.mark.parametrize(("change", "message"), [
    (lambda df: df.drop("country"), r"lacks the model's feature columns \['country'\]"),
    (lambda df: df.with_columns(pl.col("amount").cast(pl.String)),
     r"column 'amount': the current batch has type String where the reference has Float64"),
    (lambda df: df.with_columns(pl.col("tier").cast(pl.String)),
     r"column 'tier': the current batch has type String where the reference has Int64"),
    (lambda df: df.head(0), r"has no rows"),
])
def test_bad_batches_fail_naming_the_problem(trained: DriftModel, tmp_path: Path, change: object,
                                             message: str) -> None:
    path = batch(tmp_path, "bad", change(events(500, seed=11)))  # type: ignore[operator]
    with pytest.raises(DriftInputError, match=message):
        _run(trained.model, path, tmp_path)
    assert not (tmp_path / "result.json").exists() and not (tmp_path / "report.html").exists()


@pytest.mark.parametrize(("config", "error", "message"), [
    ({"columns": ["amount", "colour"]}, DriftInputError,
     r"config names columns the model does not have: \['colour'\]"),
    ({"per_column_threshold": {"size": 0.2}}, DriftInputError, r"\['size'\]"),
    ({"per_column_method": {"country": "ks"}}, DriftInputError,
     r"column 'country': method 'ks' does not apply to a categorical column"),
    ({"columns": ["prediction"]}, DriftInputError, r"'prediction' is the prediction"),
    ({"per_column_method": {"amount": "t-test"}}, ConfigError, r"per_column_method\.amount"),
])
def test_bad_configs_fail_naming_the_column(trained: DriftModel, tmp_path: Path, config: dict, error: type,
                                            message: str) -> None:
    with pytest.raises(error, match=message):
        _run(trained.model, batch(tmp_path, "b", events(500, seed=12)), tmp_path, config)


def test_a_model_without_a_bundle_fails_naming_it(trained: DriftModel, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(trained.model, bare, ignore=shutil.ignore_patterns("monitoring"))
    with pytest.raises(BundleError, match=r"monitoring/reference\.parquet is missing"):
        _run(str(bare), batch(tmp_path, "b", events(500, seed=13)), tmp_path)
