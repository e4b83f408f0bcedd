"""Drift statistics against their definitions (scipy, numpy, textbook identities), Evidently's automatic method
choice, thresholds and comparisons, missing values, and the errors that name a column."""

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial import distance

from components.drift import methods
from components.drift.config import DriftConfig
from components.drift.methods import METHODS, Counts
from components.drift.stats import ColumnData, DriftInputError, auto_method, column_drift, drift_columns, prepare

RNG = np.random.default_rng(11)


def _data(ref: object, cur: object, kind: str = "numerical") -> ColumnData:
    return prepare("x", kind, pl.Series("x", ref), pl.Series("x", cur))


@pytest.mark.parametrize(("n", "m", "rounding"), [(50, 70, None), (2000, 30_000, 1), (300, 300, 0)])
def test_wasserstein_is_scipys_distance_over_the_reference_std(n: int, m: int, rounding: int | None) -> None:
    ref, cur = RNG.normal(0, 2, n), RNG.normal(0.4, 2.5, m)
    if rounding is not None:  # ties inside and across the two samples
        ref, cur = ref.round(rounding), cur.round(rounding)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert methods.wasserstein_normed(ref, cur) == pytest.approx(expected, rel=1e-12)


def test_wasserstein_floors_the_std_of_a_constant_reference() -> None:
    ref, cur = np.full(100, 3.0), np.full(50, 3.5)
    assert methods.wasserstein_normed(ref, cur) == pytest.approx(0.5 / 0.001)


@pytest.mark.parametrize("integer", [False, True])
def test_sturges_shares_match_numpys_bins_of_the_concatenation(integer: bool) -> None:
    if integer:  # a range narrower than the Sturges bin count: numpy widens integer bins to 1
        ref, cur = RNG.integers(0, 21, 500), RNG.integers(0, 21, 200_000)
    else:
        ref, cur = RNG.normal(0, 1, 700), RNG.normal(1, 3, 90_000)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    got_ref, got_cur = methods.sturges_shares(ref.astype(float), cur.astype(float), integer=integer)
    np.testing.assert_array_equal(got_ref, np.histogram(ref, edges)[0] / ref.size)
    np.testing.assert_array_equal(got_cur, np.histogram(cur, edges)[0] / cur.size)


def test_psi_fills_zero_shares_the_way_evidently_does() -> None:
    np.testing.assert_array_equal(methods.fill_zeroes(np.array([0.5, 0.5, 0.0])), [0.5, 0.5, 0.0001])
    np.testing.assert_array_equal(methods.fill_zeroes(np.array([0.99995, 0.00005, 0.0])),
                                  [0.99995, 0.00005, 0.00005 / 10**6])
    ref, cur = np.array([0.2, 0.3, 0.5]), np.array([0.25, 0.25, 0.5])
    assert methods.psi(ref, cur) == pytest.approx(float(np.sum((ref - cur) * np.log(ref / cur))))
    assert methods.jensenshannon(ref, cur) == pytest.approx(float(distance.jensenshannon(ref, cur)))


def test_z_test_is_the_uncorrected_two_by_two_chi_squared_test() -> None:
    counts = Counts(["a", "b"], np.array([380, 620]), np.array([440, 560]))
    table = np.stack([counts.reference, counts.current])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert methods.z_test(counts) == pytest.approx(expected, rel=1e-9)
    assert methods.z_test(Counts(["a", "b"], np.array([0, 9]), np.array([0, 4]))) == 1.0


def test_chisquare_scales_the_reference_to_the_current_size_and_a_new_value_gives_zero() -> None:
    same = Counts(["a", "b", "c"], np.array([20, 30, 50]), np.array([200, 300, 500]))
    assert methods.chisquare(same) == pytest.approx(1.0)
    new = Counts(["a", "b", "c"], np.array([20, 30, 0]), np.array([20, 30, 1]))
    assert methods.chisquare(new) == 0.0


def test_p_value_methods_drift_below_the_threshold_and_ks_also_at_it() -> None:
    assert METHODS["ks"].drifted(0.05, 0.05) and not METHODS["chisquare"].drifted(0.05, 0.05)
    assert not METHODS["z"].drifted(0.05, 0.05) and METHODS["z"].drifted(0.0499, 0.05)
    assert METHODS["wasserstein"].drifted(0.1, 0.1) and not METHODS["psi"].drifted(0.0999, 0.1)
    assert {m: s.default_threshold for m, s in METHODS.items()} == {
        "ks": 0.05, "chisquare": 0.05, "z": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}


@pytest.mark.parametrize(("ref", "cur", "kind", "expected"), [
    (RNG.normal(0, 1, 1000), RNG.normal(0, 1, 50), "numerical", "ks"),
    (RNG.normal(0, 1, 1001), RNG.normal(0, 1, 50), "numerical", "wasserstein"),
    (RNG.integers(0, 3, 800), RNG.integers(0, 3, 80), "numerical", "chisquare"),
    (RNG.integers(0, 2, 800), RNG.integers(0, 2, 80), "numerical", "z"),
    (RNG.integers(0, 3, 800), RNG.integers(0, 9, 80), "numerical", "ks"),  # 9 values on both sides together
    (RNG.integers(0, 5, 5000), RNG.integers(0, 5, 80), "numerical", "jensenshannon"),
    (RNG.choice(["a", "b", "c"], 1000), RNG.choice(["a"], 10), "categorical", "chisquare"),
    (RNG.choice(["a", "b"], 1000), RNG.choice(["a"], 10), "categorical", "z"),
    (RNG.choice(["a", "b"], 1001), RNG.choice(["a"], 10), "categorical", "jensenshannon"),
])
def test_automatic_method_is_evidentlys_choice(ref: np.ndarray, cur: np.ndarray, kind: str, expected: str) -> None:
    assert auto_method(_data(ref, cur, kind)) == expected


def test_the_reference_size_that_picks_the_method_counts_non_missing_rows_only() -> None:
    ref = np.concatenate([RNG.normal(0, 1, 900), np.full(300, np.nan)])
    data = _data(ref, RNG.normal(0, 1, 100))
    assert auto_method(data) == "ks" and len(data.reference) == 900


def test_missing_values_are_dropped_and_their_share_reported() -> None:
    ref = pl.Series("x", [1.0, 2.0, None, np.nan, np.inf, 3.0, 4.0, 5.0, 6.0, 7.0])
    cur = pl.Series("x", [1.0, None, -np.inf, 2.5])
    result = column_drift(prepare("x", "numerical", ref, cur))
    assert (result.reference_rows, result.current_rows) == (7, 2)
    assert result.reference_null_share == pytest.approx(0.3) and result.null_share == pytest.approx(0.5)
    text = prepare("c", "categorical", pl.Series(["a", None, "b"]), pl.Series(["a", "b", None, None]))
    assert list(text.reference) == ["a", "b"] and text.null_share == 0.5


def test_an_all_missing_current_column_is_drifted_with_a_note_and_no_score() -> None:
    for cur in (pl.Series("x", [None, None], dtype=pl.Float64), pl.Series("x", [None, None]),
                pl.Series("x", [np.nan, np.inf])):
        result = column_drift(prepare("x", "numerical", pl.Series("x", RNG.normal(0, 1, 50)), cur))
        assert result.drifted and result.score is None and result.method == "ks" and result.null_share == 1.0
        assert "every current value is missing" in result.note


def test_a_constant_reference_column_is_tested_by_value() -> None:
    same = column_drift(_data(np.ones(500), np.ones(300)))
    assert same.method == "z" and same.score == 1.0 and not same.drifted
    moved = column_drift(_data(np.ones(5000), np.full(300, 2.0)))
    assert moved.method == "jensenshannon" and moved.drifted and moved.score == pytest.approx(np.sqrt(np.log(2)))


def test_values_seen_on_one_side_only_are_named() -> None:
    result = column_drift(_data(["a", "b", "c"] * 100, ["a", "b", "d"] * 50, "categorical"))
    assert result.drifted and result.method == "chisquare" and result.score == 0.0
    assert result.note == "new in current: d; absent from current: c"


def test_thresholds_per_column_win_over_the_global_one_which_wins_over_the_default() -> None:
    ref = pl.DataFrame({"a": RNG.normal(0, 1, 2000), "b": RNG.normal(0, 1, 2000)})
    cur = pl.DataFrame({"a": RNG.normal(0.15, 1, 2000), "b": RNG.normal(0.15, 1, 2000)})
    kinds = {"a": "numerical", "b": "numerical"}
    default = {c.column: c for c in drift_columns(ref, cur, kinds, DriftConfig())}
    assert all(c.threshold == 0.1 and c.drifted for c in default.values())
    tuned = {c.column: c for c in drift_columns(ref, cur, kinds, DriftConfig.parse(
        {"threshold": 0.5, "per_column_threshold": {"a": 0.12}, "per_column_method": {"b": "psi"}}))}
    assert (tuned["a"].method, tuned["a"].threshold, tuned["a"].drifted) == ("wasserstein", 0.12, True)
    assert (tuned["b"].method, tuned["b"].threshold, tuned["b"].drifted) == ("psi", 0.5, False)


def test_a_method_that_does_not_fit_the_column_fails_naming_both() -> None:
    data = _data(["a", "b"] * 10, ["a"] * 5, "categorical")
    with pytest.raises(DriftInputError, match=r"column 'x': method 'ks' does not apply to a categorical column"):
        column_drift(data, "ks")


@pytest.mark.parametrize(("ref", "cur", "message"), [
    (pl.Series("x", [1.0, 2.0]), pl.Series("x", ["1", "2"]), r"column 'x': the current batch has type String"),
    (pl.Series("x", ["a", "b"]), pl.Series("x", [1, 2]), r"column 'x': the current batch has type Int64"),
    (pl.Series("x", [None, np.nan]), pl.Series("x", [1.0]), r"column 'x': the reference has no non-missing"),
])
def test_bad_columns_fail_naming_the_column(ref: pl.Series, cur: pl.Series, message: str) -> None:
    kind = "categorical" if ref.dtype == pl.String else "numerical"
    with pytest.raises(DriftInputError, match=message):
        prepare("x", kind, ref, cur)


def test_a_text_reference_cannot_be_numerical() -> None:
    with pytest.raises(DriftInputError, match=r"column 'x': the reference's type String cannot be tested as "):
        prepare("x", "numerical", pl.Series("x", ["a"]), pl.Series("x", ["a"]))
