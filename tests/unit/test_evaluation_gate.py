"""The gate: its config, the absolute thresholds, the paired bootstrap, the comparison rule in both directions,
and the property that a candidate worse than the champion beyond the tolerance is never blessed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from components._core.config import ConfigError
from components.evaluation.bootstrap import paired_difference
from components.evaluation.config import LOWER_IS_BETTER, Comparison, EvaluationConfig, Thresholds
from components.evaluation.gate import compare, decide, threshold_checks
from components.evaluation.metrics import metric_function

METRICS = ["auc", "accuracy", "precision", "recall", "f1", "log_loss", "calibration_error"]


def test_default_limits_and_a_limit_turned_off() -> None:
    assert Thresholds().limits() == {"auc": ("min", 0.6), "log_loss": ("max", 0.693),
                                     "calibration_error": ("max", 0.15)}
    limits = Thresholds.parse({"min_auc": None, "min_f1": 0.5}).limits()
    assert limits == {"f1": ("min", 0.5), "log_loss": ("max", 0.693), "calibration_error": ("max", 0.15)}


@pytest.mark.parametrize(("config", "field"), [
    ('{"comparison": {"tolerance": -0.1}}', r"EvaluationConfig\.comparison\.tolerance"),
    ('{"comparison": {"metric": "mse"}}', r"EvaluationConfig\.comparison\.metric"),
    ('{"comparison": {"resamples": 10}}', r"EvaluationConfig\.comparison\.resamples"),
    ('{"thresholds": {"min_aucc": 0.7}}', r"EvaluationConfig\.thresholds\.min_aucc"),
    ('{"slices": {"column": ""}}', r"EvaluationConfig\.slices\.column"),
    ('{"decision_threshold": 1.5}', r"EvaluationConfig\.decision_threshold"),
    ('{"thresholds": ', "not valid JSON"),
])
def test_a_bad_config_names_the_field(config: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        EvaluationConfig.parse(config)


def test_threshold_checks_explain_each_limit() -> None:
    metrics: dict[str, float | None] = {"auc": 0.82, "log_loss": 0.9, "calibration_error": 0.05, "f1": None}
    checks = threshold_checks(metrics, Thresholds.parse({"min_f1": 0.5, "min_rows": 100}), rows=80)
    by_name = {c.name: c for c in checks}
    assert {n: c.passed for n, c in by_name.items()} == {
        "min_rows": False, "min_auc": True, "max_log_loss": False, "max_calibration_error": True, "min_f1": False}
    assert by_name["min_rows"].reason == "held-out rows 80 < min_rows 100"
    assert by_name["min_auc"].reason == "auc 0.8200 >= min_auc 0.6"
    assert by_name["max_log_loss"].reason == "log_loss 0.9000 > max_log_loss 0.693"
    assert "f1 is undefined" in by_name["min_f1"].reason
    decision = decide(checks)
    assert not decision.blessed and decision.reasons == [
        by_name[n].reason for n in ("min_rows", "min_f1", "max_log_loss")]


def _labels(n: int = 60) -> np.ndarray:
    return (np.arange(n) % 2).astype(np.float64)


def test_identical_models_differ_by_exactly_zero() -> None:
    y = _labels()
    p = np.random.default_rng(1).random(len(y))
    interval = paired_difference(y, p, p.copy(), metric_function("auc", 0.5, 10), resamples=200, confidence=0.95,
                                 seed=0)
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)  # paired: same rows for both


def test_bootstrap_is_seeded_and_keeps_class_counts() -> None:
    y = np.array([1.0] * 10 + [0.0] * 30)
    rng = np.random.default_rng(2)
    a, b = rng.random(40), rng.random(40)
    seen: list[tuple[int, int]] = []

    def auc_noting_counts(yy: np.ndarray, p: np.ndarray) -> float:
        seen.append((int(yy.sum()), len(yy)))
        return metric_function("auc", 0.5, 10)(yy, p)

    first = paired_difference(y, a, b, auc_noting_counts, resamples=150, confidence=0.9, seed=7)
    assert set(seen) == {(10, 40)} and len(seen) == 2 * 150 + 2  # both models on every resample, then all rows
    assert paired_difference(y, a, b, auc_noting_counts, resamples=150, confidence=0.9, seed=7) == first
    other = paired_difference(y, a, b, auc_noting_counts, resamples=150, confidence=0.9, seed=8)
    assert other.estimate == first.estimate and (other.low, other.high) != (first.low, first.high)
    assert first.low <= first.estimate <= first.high
    with pytest.raises(ValueError, match="both classes"):
        paired_difference(np.ones(5), a[:5], b[:5], auc_noting_counts, resamples=100, confidence=0.9, seed=0)


def _slightly_worse() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A candidate a little worse than the champion on a few rows: within the tolerance on these rows, but with
    an interval that reaches beyond it."""
    y = _labels()
    champion = np.clip(0.5 + (y - 0.5) * 0.3 + np.random.default_rng(3).normal(0, 0.2, len(y)), 0.01, 0.99)
    candidate = champion.copy()
    candidate[np.flatnonzero(y > 0)[:7]] -= 0.05
    return y, candidate, champion


def test_a_candidate_within_the_tolerance_but_not_with_the_confidence_is_not_blessed() -> None:
    y, candidate, champion = _slightly_worse()
    interval, check = compare(y, candidate, champion, Comparison(), 0.5, 10)
    assert -0.01 <= interval.estimate < 0 and interval.low < -0.01  # the construction does what it says
    assert not check.passed and check.name == "champion_auc"
    assert "the interval's lower bound" in check.reason and "at 95% confidence" in check.reason
    wider = Comparison(tolerance=0.05)
    assert compare(y, candidate, champion, wider, 0.5, 10)[1].passed


def test_lower_is_better_metrics_use_the_upper_bound() -> None:
    y = _labels(200)
    rng = np.random.default_rng(4)
    champion = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    sharper = np.clip(0.5 + (y - 0.5) * 0.9 + rng.normal(0, 0.02, len(y)), 0.01, 0.99)  # lower log loss
    interval, check = compare(y, sharper, champion, Comparison(metric="log_loss"), 0.5, 10)
    assert interval.high < 0 and check.passed
    interval, check = compare(y, champion, sharper, Comparison(metric="log_loss"), 0.5, 10)
    assert interval.estimate > 0.01 and not check.passed
    assert "the difference" in check.reason and "is above +0.01" in check.reason and "lower is better" in check.reason


@st.composite
def worse_candidates(draw: st.DrawFn) -> dict[str, Any]:
    """Labels, a champion that has signal, and a candidate that is the champion partly replaced by noise."""
    n = draw(st.integers(20, 160))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < draw(st.floats(0.2, 0.8))).astype(np.float64)
    y[:2] = (0.0, 1.0)
    champion = np.clip(0.5 + (y - 0.5) * draw(st.floats(0.1, 0.9)) + rng.normal(0, 0.15, n), 0.001, 0.999)
    w = draw(st.floats(0.2, 1.0))
    candidate = np.clip((1 - w) * champion + w * rng.random(n), 0.001, 0.999)
    return {"y": y, "candidate": candidate, "champion": champion, "metric": draw(st.sampled_from(METRICS)),
            "tolerance": draw(st.sampled_from([0.0, 0.005, 0.01, 0.05])),
            "confidence": draw(st.sampled_from([0.8, 0.9, 0.95])), "seed": draw(st.integers(0, 1000))}


@settings(max_examples=150, deadline=None)
@given(worse_candidates())
def test_the_gate_never_blesses_a_candidate_truly_worse_beyond_the_tolerance(case: dict[str, Any]) -> None:
    y, candidate, champion, metric = case["y"], case["candidate"], case["champion"], case["metric"]
    fn = metric_function(metric, 0.5, 10)
    truth = fn(y, candidate) - fn(y, champion)  # the true difference on these held-out rows
    lower = metric in LOWER_IS_BETTER
    assume(truth > case["tolerance"] if lower else truth < -case["tolerance"])
    cfg = Comparison(metric=metric, tolerance=case["tolerance"], confidence=case["confidence"], resamples=100,
                     seed=case["seed"])
    interval, check = compare(y, candidate, champion, cfg, 0.5, 10)
    assert interval.estimate == pytest.approx(truth)
    assert not check.passed and not decide([check]).blessed


@st.composite
def better_candidates(draw: st.DrawFn) -> dict[str, Any]:
    """At least 40 rows of each class; a candidate that separates them sharply and is well calibrated (p near 0.97
    for positives, 0.03 for negatives); a champion of uniform noise."""
    n_pos, n_neg = draw(st.integers(40, 150)), draw(st.integers(40, 150))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    y = rng.permutation(np.array([1.0] * n_pos + [0.0] * n_neg))
    candidate = np.clip(np.where(y > 0, 0.97, 0.03) + rng.normal(0, 0.01, len(y)), 0.001, 0.999)
    return {"y": y, "candidate": candidate, "champion": rng.random(len(y)),
            "metric": draw(st.sampled_from(METRICS)), "seed": draw(st.integers(0, 1000))}


@settings(max_examples=60, deadline=None)
@given(better_candidates())
def test_a_clearly_better_candidate_is_blessed(case: dict[str, Any]) -> None:
    cfg = Comparison(metric=case["metric"], tolerance=0.0, confidence=0.95, resamples=100, seed=case["seed"])
    interval, check = compare(case["y"], case["candidate"], case["champion"], cfg, 0.5, 10)
    assert check.passed and decide([check]).blessed, check.reason
    assert (interval.high < 0) if case["metric"] in LOWER_IS_BETTER else (interval.low > 0)
