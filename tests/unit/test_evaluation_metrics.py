"""The evaluation's metrics against scikit-learn's, the calibration error by its definition, the bounded ROC
curve, the confusion matrix and per-slice metrics."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from components.evaluation.config import Slicing
from components.evaluation.errors import EvaluationError
from components.evaluation.metrics import (
    all_metrics,
    calibration_error,
    calibration_table,
    confusion,
    metric_function,
    roc_curve,
    roc_points,
)
from components.evaluation.slices import slice_metrics


@st.composite
def scored(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Labels with both classes and probabilities in (0, 1), some tied, some at exactly 0.5."""
    n = draw(st.integers(4, 120))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.float64)
    y[0], y[1] = 0.0, 1.0
    grid = draw(st.sampled_from([0, 3, 20]))  # 0: continuous; else rounded to create ties
    p = np.array(draw(st.lists(st.floats(0.001, 0.999), min_size=n, max_size=n)))
    return y, (np.round(p * grid) / grid if grid else p).clip(0.001, 0.999)


@settings(max_examples=100, deadline=None)
@given(scored(), st.sampled_from([0.3, 0.5, 0.7]))
def test_every_metric_equals_scikit_learns(data: tuple[np.ndarray, np.ndarray], threshold: float) -> None:
    y, p = data
    pred = (p >= threshold).astype(int)
    got = all_metrics(y, p, threshold, bins=10)
    expected = {
        "auc": sk.roc_auc_score(y, p),
        "accuracy": sk.accuracy_score(y, pred),
        "precision": sk.precision_score(y, pred, zero_division=0),
        "recall": sk.recall_score(y, pred, zero_division=0),
        "f1": sk.f1_score(y, pred, zero_division=0),
        "log_loss": sk.log_loss(y, p, labels=[0, 1]),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert confusion(y, p, threshold) == sk.confusion_matrix(y, pred, labels=[0, 1]).tolist()


def test_calibration_error_by_its_definition() -> None:
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1], dtype=np.float64)
    p = np.array([0.05, 0.15, 0.15, 0.55, 0.55, 0.95, 0.95, 1.0])
    # bins [0, .1): {0.05 -> y 0}; [.1, .2): {.15, .15 -> y 0, 1}; [.5, .6): {.55, .55 -> 1, 1}; [.9, 1]: {.95, .95, 1}
    gaps = [1 * abs(0 - 0.05), 2 * abs(0.5 - 0.15), 2 * abs(1 - 0.55), 3 * abs(2 / 3 - (0.95 + 0.95 + 1) / 3)]
    expected = sum(gaps) / 8
    assert calibration_error(y, p, bins=10) == pytest.approx(expected)
    table = calibration_table(y, p, bins=10)
    assert [b["rows"] for b in table] == [1, 2, 0, 0, 0, 2, 0, 0, 0, 3]  # 1.0 falls in the last, closed bin
    assert table[2]["mean_predicted"] is None and table[9]["observed_rate"] == pytest.approx(2 / 3)
    assert calibration_error(y, y, bins=10) == 0.0  # a perfectly sure, right model is perfectly calibrated


def test_auc_is_none_when_only_one_class_is_present() -> None:
    got = all_metrics(np.zeros(5), np.linspace(0.1, 0.9, 5), 0.5, 10)
    assert got["auc"] is None and got["accuracy"] == pytest.approx(0.4)


def test_unknown_metric_is_named() -> None:
    with pytest.raises(ValueError, match="'mse'"):
        metric_function("mse", 0.5, 10)


@pytest.mark.parametrize("case", ["continuous", "ties", "coarse", "tiny", "perfect"])
def test_roc_curve_is_scikit_learns(case: str) -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.3).astype(np.float64)
    p = {"continuous": np.clip(0.3 * y + rng.random(2000) * 0.7, 0, 1),
         "ties": np.round(0.3 * y + rng.random(2000) * 0.7, 2),
         "coarse": np.round(0.3 * y + rng.random(2000) * 0.7, 1),
         "tiny": rng.random(2000),
         "perfect": y * 0.9 + 0.05}[case]
    if case == "tiny":
        y, p = np.array([0.0, 1.0, 1.0, 0.0, 1.0]), np.array([0.1, 0.4, 0.35, 0.8, 0.4])
    ours, theirs = roc_curve(y, p), sk.roc_curve(y, p, drop_intermediate=True)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b)


def test_roc_curve_is_bounded_keeps_its_ends_and_has_json_thresholds() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.4).astype(np.float64)
    p = np.clip(0.3 * y + rng.random(5000) * 0.7, 0, 1)
    full = sk.roc_curve(y, p, drop_intermediate=True)
    assert len(full[0]) > 200
    curve = roc_points(y, p, max_points=50)
    assert 45 <= len(curve.fpr) <= 50 and len(curve.fpr) == len(curve.tpr) == len(curve.thresholds)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert curve.thresholds[0] == 1.0 and all(0.0 <= t <= 1.0 and math.isfinite(t) for t in curve.thresholds)
    assert curve.fpr == sorted(curve.fpr) and curve.tpr == sorted(curve.tpr)
    small = roc_points(y[:10], p[:10], max_points=50)
    assert len(small.fpr) == len(sk.roc_curve(y[:10], p[:10], drop_intermediate=True)[0])  # nothing dropped


def _slice_rows() -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    site = ["a"] * 40 + ["b"] * 35 + ["c"] * 5 + [None] * 3
    y = np.array([i % 2 for i in range(len(site))], dtype=np.float64)
    p = np.where(y > 0, 0.8, 0.3)
    p[40:75] = 0.6  # slice b: no separation
    return pl.DataFrame({"site": site}), y, p


def test_slices_score_each_value_and_skip_the_small_ones() -> None:
    rows, y, p = _slice_rows()
    report = slice_metrics(rows, y, p, Slicing(column="site", min_rows=10), 0.5, 10)
    assert report is not None
    assert [(s["value"], s["rows"]) for s in report.evaluated] == [("a", 40), ("b", 35)]
    assert report.skipped == [{"value": "c", "rows": 5}, {"value": "(null)", "rows": 3}]
    a, b = report.evaluated
    assert a["auc"] == 1.0 and a["accuracy"] == 1.0 and a["positives"] == 20
    assert b["auc"] == 0.5 and b["precision"] == pytest.approx(17 / 35)
    assert slice_metrics(rows, y, p, Slicing(), 0.5, 10) is None  # slicing off by default


def test_slicing_by_a_missing_or_non_categorical_column_is_an_error() -> None:
    rows, y, p = _slice_rows()
    with pytest.raises(EvaluationError, match=r"slice column 'country' is not in the training set.*'site'"):
        slice_metrics(rows, y, p, Slicing(column="country"), 0.5, 10)
    numeric = pl.DataFrame({"amount": np.arange(len(y), dtype=np.float64)})
    with pytest.raises(EvaluationError, match=r"'amount' has 83 distinct .*max_slices 20"):
        slice_metrics(numeric, y, p, Slicing(column="amount", max_slices=20), 0.5, 10)
