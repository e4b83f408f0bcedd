"""The seeded drift matrix: our per-column verdicts, scores and methods against Evidently 0.7.23's own
``DataDriftPreset`` (its automatic column typing and method choice) on the same data, for no shift, small and
large shifts in numerical and categorical columns, missing and new categories, constant and all-null columns, and
references on both sides of Evidently's 1000-row switch from p-value tests to distances. Each case also states
the verdicts it expects, so a change that moved both implementations alike would still fail."""

import warnings
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pytest

from components.drift.config import DriftConfig
from components.drift.methods import METHODS
from components.drift.roles import low_cardinality
from components.drift.stats import ColumnDrift, drift_columns

DISPLAY = {spec.display_name: name for name, spec in METHODS.items()}
CATS = ["a", "b", "c", "d"]
BASE_P = [0.4, 0.3, 0.2, 0.1]


@dataclass(frozen=True)
class Shift:
    """How the current side differs from the reference."""

    num: float = 0.0  # mean shift of `num` and `count`, in standard deviations
    cat_p: list[float] = field(default_factory=lambda: BASE_P)  # `cat` shares of CATS (+ "e" when 5 long)
    flag_p: float = 0.5  # share of "yes" in `flag`
    level_high: int = 3  # `level` draws integers below this


def frame(rows: int, seed: int, shift: Shift = Shift()) -> pl.DataFrame:
    """Five feature columns: numerical float and integer, a 4-value string, a binary string, a 3-value integer."""
    rng = np.random.default_rng(seed)
    cats = [*CATS, "e"] if len(shift.cat_p) == 5 else CATS
    return pl.DataFrame({
        "num": rng.normal(shift.num, 1.0, rows),
        "count": rng.poisson(30 + shift.num * np.sqrt(30), rows).astype(np.int64),
        "cat": rng.choice(cats, rows, p=shift.cat_p),
        "flag": rng.choice(["no", "yes"], rows, p=[1 - shift.flag_p, shift.flag_p]),
        "level": rng.integers(0, shift.level_high, rows).astype(np.int64),
    })


def kinds_of(reference: pl.DataFrame) -> dict[str, str]:
    """The roles rule: strings and low-cardinality integers are categorical (Evidently's own typing)."""
    return {c: "categorical" if s.dtype == pl.String or low_cardinality(s) else "numerical"
            for c, s in reference.to_dict().items()}


def evidently(reference: pl.DataFrame, current: pl.DataFrame) -> tuple[dict[str, tuple[str, float, bool]], bool]:
    """Evidently's DataDriftPreset with its automatic column typing: column -> (method, score, drifted), and the
    dataset verdict."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset()], include_tests=True).run(
            Dataset.from_pandas(current.to_pandas(), data_definition=DataDefinition()),
            Dataset.from_pandas(reference.to_pandas(), data_definition=DataDefinition()))
    doc = snap.dict()
    failed = {t["metric_config"]["params"].get("column", "dataset"): str(t["status"]).endswith("FAIL")
              for t in doc["tests"]}
    columns = {m["config"]["column"]: (DISPLAY[m["config"]["method"]], float(m["value"]), failed[m["config"]["column"]])
               for m in doc["metrics"][1:]}
    return columns, failed["dataset"]


@dataclass(frozen=True)
class Case:
    """A seeded reference/current pair and the verdicts it must give."""

    rows: tuple[int, int]  # reference, current
    shift: Shift
    methods: dict[str, str]
    drifted: set[str]
    seed: int = 1

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        return frame(self.rows[0], self.seed), frame(self.rows[1], self.seed + 100, self.shift)


SMALL = {"num": "ks", "count": "ks", "cat": "chisquare", "flag": "z", "level": "chisquare"}
LARGE = {"num": "wasserstein", "count": "wasserstein", "cat": "jensenshannon", "flag": "jensenshannon",
         "level": "jensenshannon"}
CASES = {
    "no shift, small": Case((600, 400), Shift(), SMALL, set()),
    "no shift, 1000-row reference": Case((1000, 700), Shift(), SMALL, set()),
    "no shift, 1001-row reference": Case((1001, 700), Shift(), LARGE, set()),
    "no shift, large": Case((3000, 2000), Shift(), LARGE, set()),
    "small numeric shift, small": Case((600, 400), Shift(num=0.05), SMALL, set()),
    "large numeric shift, small": Case((600, 400), Shift(num=0.6), SMALL, {"num", "count"}),
    "small numeric shift, large": Case((3000, 2000), Shift(num=0.05), LARGE, set()),
    "large numeric shift, large": Case((3000, 2000), Shift(num=0.6), LARGE, {"num", "count"}),
    "small categorical shift, small": Case((600, 400), Shift(cat_p=[0.39, 0.31, 0.2, 0.1], flag_p=0.52), SMALL,
                                           set()),
    "large categorical shift, small": Case((600, 400), Shift(cat_p=[0.1, 0.2, 0.3, 0.4], flag_p=0.8, level_high=4),
                                           SMALL, {"cat", "flag", "level"}),
    "small categorical shift, large": Case((3000, 2000), Shift(cat_p=[0.39, 0.31, 0.2, 0.1], flag_p=0.52), LARGE,
                                           set()),
    "large categorical shift, large": Case((3000, 2000), Shift(cat_p=[0.1, 0.2, 0.3, 0.4], flag_p=0.8, level_high=4),
                                           LARGE, {"cat", "flag", "level"}),
    "current lacks a category, small": Case((600, 400), Shift(cat_p=[0.45, 0.33, 0.22, 0.0]), SMALL, {"cat"}),
    "current lacks a category, large": Case((3000, 2000), Shift(cat_p=[0.45, 0.33, 0.22, 0.0]), LARGE, {"cat"}),
    "current has a new category, small": Case((600, 400), Shift(cat_p=[0.39, 0.29, 0.2, 0.1, 0.02]), SMALL, {"cat"}),
    "current has a new category, large": Case((3000, 2000), Shift(cat_p=[0.39, 0.29, 0.2, 0.1, 0.02]), LARGE, set()),
    "tiny current batch": Case((300, 40), Shift(num=1.0), SMALL, {"num", "count"}, seed=2),
}


def _ours(reference: pl.DataFrame, current: pl.DataFrame) -> dict[str, ColumnDrift]:
    return {c.column: c for c in drift_columns(reference, current, kinds_of(reference), DriftConfig())}


def _agree(ours: dict[str, ColumnDrift], theirs: dict[str, tuple[str, float, bool]]) -> None:
    assert set(ours) == set(theirs)
    for name, (method, score, drifted) in theirs.items():
        mine = ours[name]
        assert (name, mine.method, mine.drifted) == (name, method, drifted)
        assert mine.score == pytest.approx(score, rel=1e-6, abs=1e-12), name


@pytest.mark.parametrize("name", list(CASES))
def test_the_matrix_gives_the_expected_verdicts_and_evidentlys(name: str) -> None:
    case = CASES[name]
    reference, current = case.frames()
    ours = _ours(reference, current)
    assert {c: r.method for c, r in ours.items()} == case.methods
    assert {c for c, r in ours.items() if r.drifted} == case.drifted
    theirs, dataset = evidently(reference, current)
    _agree(ours, theirs)
    assert dataset == (len(case.drifted) / len(ours) >= 0.5)


@pytest.mark.parametrize(("ref_rows", "value", "method", "drifted"), [
    (600, 1.0, "z", False), (600, 2.0, "z", True), (3000, 1.0, "jensenshannon", False),
    (3000, 2.0, "jensenshannon", True)])
def test_a_constant_column(ref_rows: int, value: float, method: str, drifted: bool) -> None:
    reference = frame(ref_rows, 3).with_columns(const=pl.lit(1.0))
    current = frame(400, 4).with_columns(const=pl.lit(value))
    ours = _ours(reference, current)
    assert (ours["const"].method, ours["const"].drifted) == (method, drifted)
    _agree(ours, evidently(reference, current)[0])


@pytest.mark.parametrize("ref_rows", [600, 3000])
def test_missing_values_are_dropped_on_both_sides_like_evidently(ref_rows: int) -> None:
    def holes(df: pl.DataFrame, seed: int) -> pl.DataFrame:
        mask = np.random.default_rng(seed).random(df.height) < 0.15
        return df.with_columns(num=pl.when(pl.Series(mask)).then(float("nan")).otherwise(pl.col("num")),
                               cat=pl.when(pl.Series(mask)).then(None).otherwise(pl.col("cat")))

    reference, current = holes(frame(ref_rows, 5), 1), holes(frame(500, 6, Shift(num=0.6)), 2)
    ours = _ours(reference, current)
    assert ours["num"].drifted and ours["num"].reference_rows < ref_rows * 0.9 and ours["num"].null_share > 0.1
    _agree(ours, evidently(reference, current)[0])


def test_an_all_null_current_column_is_drifted_here_while_evidently_raises() -> None:
    reference, current = frame(600, 7), frame(400, 8).with_columns(num=pl.lit(None, dtype=pl.Float64))
    ours = _ours(reference, current)
    assert ours["num"].drifted and ours["num"].score is None and ours["num"].method == "ks"
    assert {c for c, r in ours.items() if r.drifted} == {"num"}
    with pytest.raises(ValueError, match="An empty column 'num' was provided for drift calculation in the current"):
        evidently(reference, current)
    rest = [c for c in reference.columns if c != "num"]
    _agree({c: ours[c] for c in rest}, evidently(reference.select(rest), current.select(rest))[0])


def test_the_dataset_drifts_at_exactly_the_drift_share_as_in_evidently() -> None:
    columns = ["num", "count", "cat", "flag"]
    reference, current = frame(3000, 9).select(columns), frame(2000, 10, Shift(num=0.6)).select(columns)
    ours = _ours(reference, current)
    assert [c for c, r in ours.items() if r.drifted] == ["num", "count"]  # 2 of 4: share 0.5
    theirs, dataset = evidently(reference, current)
    _agree(ours, theirs)
    assert dataset is True


@pytest.mark.parametrize("levels", [8, 12])
def test_integers_with_at_most_ten_values_are_categorical_as_evidently_types_them(levels: int) -> None:
    reference = frame(800, 11, Shift(level_high=levels))
    current = frame(500, 12, Shift(level_high=levels))
    ours = _ours(reference, current)
    assert ours["level"].kind == ("categorical" if levels <= 10 else "numerical")
    assert ours["level"].method == ("chisquare" if levels <= 10 else "ks")
    _agree(ours, evidently(reference, current)[0])
