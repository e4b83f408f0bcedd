"""Per-column drift statistics over every row (or a stated bound), with Evidently 0.7.23's automatic method
choice (``legacy/calculations/stattests/registry.py``, ``_get_default_stattest``) and its handling of missing
values (``legacy/calculations/data_drift.py``, ``get_one_column_drift``).

Missing values (null, and NaN or +-inf in numeric columns) are dropped from both sides before testing, as
Evidently does. The automatic choice looks at the reference's non-missing rows and at the number of distinct
values of both sides together: a reference of at most 1000 rows gets ``ks`` for a numerical column with more than
5 distinct values, ``chisquare`` for more than 2 and ``z`` otherwise (categorical columns: ``chisquare`` / ``z``
the same way); a larger reference gets ``wasserstein`` for a numerical column with more than 5 distinct values and
``jensenshannon`` otherwise (categorical columns: always ``jensenshannon``). A current column with no values left
is reported as drifted with a note (Evidently raises an error for it); a reference column with none is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from components.drift import methods
from components.drift.config import DriftConfig
from components.drift.methods import METHODS, Counts

SMALL_REFERENCE = 1000  # Evidently: a reference of at most this many rows gets the p-value tests
FEW_VALUES = 5  # ... and a numerical column with at most this many distinct values is tested as categorical


class DriftInputError(ValueError):
    """The reference or the current batch cannot be tested as configured; the message names the column."""


def family(dtype: pl.DataType) -> str | None:
    """``numeric`` (numbers and booleans), ``text`` (strings, categoricals, enums), ``null`` (a column of nulls
    only) or None (anything else: not testable)."""
    if dtype == pl.Null:
        return "null"
    if dtype.is_numeric() or dtype == pl.Boolean:
        return "numeric"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "text"
    return None


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test: method, score (p-value or distance; None when the current side has no values),
    threshold and verdict, non-missing rows used per side and the missing share of each side."""

    column: str
    kind: str
    method: str
    score: float | None
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    null_share: float
    reference_null_share: float
    note: str = ""

    def row(self) -> dict[str, Any]:
        """The JSON row of the result document."""
        return {"column": self.column, "kind": self.kind, "method": self.method,
                "method_name": METHODS[self.method].display_name, "score": self.score,
                "threshold": self.threshold, "drifted": self.drifted, "reference_rows": self.reference_rows,
                "current_rows": self.current_rows, "null_share": self.null_share,
                "reference_null_share": self.reference_null_share, "note": self.note}


@dataclass
class ColumnData:
    """A column's non-missing values on both sides: float64 arrays (numeric) or string Series (text)."""

    name: str
    kind: str
    reference: Any
    current: Any
    integer: bool  # both sides were integers without missing values (Evidently's pandas column stays int64)
    null_share: float
    reference_null_share: float
    _counts: Counts | None = field(default=None, repr=False)

    @property
    def numeric(self) -> bool:
        return isinstance(self.reference, np.ndarray)

    def counts(self) -> Counts:
        """Value counts of both sides over the union of values, sorted by value."""
        if self._counts is None:
            self._counts = _numeric_counts(self.reference, self.current) if self.numeric else \
                _text_counts(self.reference, self.current)
        return self._counts

    def distinct_values(self) -> int:
        """Distinct values of both sides together (Evidently's ``n_values``); exact up to ``FEW_VALUES``, a
        larger number may be a lower bound."""
        if self.numeric and np.unique(self.reference).size > FEW_VALUES:
            return FEW_VALUES + 1
        return len(self.counts().keys)

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-side shares for ``jensenshannon`` / ``psi``: Sturges bins for a numerical column with more than
        20 distinct reference values, else per value."""
        if self.kind == "numerical" and self.numeric and \
                np.unique(self.reference).size > methods.HISTOGRAM_MIN_UNIQUE:
            return methods.sturges_shares(self.reference, self.current, integer=self.integer)
        c = self.counts()
        return c.reference / c.reference.sum(), c.current / c.current.sum()


def _numeric_counts(reference: np.ndarray, current: np.ndarray) -> Counts:
    ref_keys, ref_n = np.unique(reference, return_counts=True)
    cur_keys, cur_n = np.unique(current, return_counts=True)
    keys = np.union1d(ref_keys, cur_keys)
    ref, cur = np.zeros(keys.size, np.int64), np.zeros(keys.size, np.int64)
    ref[np.searchsorted(keys, ref_keys)] = ref_n
    cur[np.searchsorted(keys, cur_keys)] = cur_n
    return Counts(keys.tolist(), ref, cur)


def _text_counts(reference: pl.Series, current: pl.Series) -> Counts:
    ref = reference.rename("v").value_counts(name="ref")
    cur = current.rename("v").value_counts(name="cur")
    joined = ref.join(cur, on="v", how="full", coalesce=True).fill_null(0).sort("v")
    return Counts(joined.get_column("v").to_list(), joined.get_column("ref").to_numpy().astype(np.int64),
                  joined.get_column("cur").to_numpy().astype(np.int64))


def _present(series: pl.Series, fam: str) -> tuple[Any, float]:
    """Non-missing values (float64 array or string Series) and the missing share."""
    total = max(series.len(), 1)
    if fam == "text":
        kept = series.cast(pl.String).drop_nulls()
        return kept, 1.0 - kept.len() / total
    values = series.cast(pl.Float64).to_numpy()
    finite = values[np.isfinite(values)]
    return finite, 1.0 - finite.size / total


def check_types(name: str, kind: str, reference: pl.DataType, current: pl.DataType) -> tuple[str, str]:
    """The type families of both sides; ``DriftInputError`` naming the column when the reference cannot be tested
    as ``kind`` or the current side's type is not the reference's (a column of nulls only fits any)."""
    ref_family, cur_family = family(reference), family(current)
    if ref_family not in ("numeric", "text") or (kind == "numerical" and ref_family != "numeric"):
        raise DriftInputError(f"column {name!r}: the reference's type {reference} cannot be tested as {kind}")
    if cur_family not in (ref_family, "null"):
        raise DriftInputError(f"column {name!r}: the current batch has type {current} where the reference has "
                              f"{reference} ({ref_family})")
    return ref_family, str(cur_family)


def prepare(name: str, kind: str, reference: pl.Series, current: pl.Series) -> ColumnData:
    """Both sides of a column with missing values dropped; a type that does not match the reference's, or a
    reference with no values, raises ``DriftInputError`` naming the column."""
    ref_family, cur_family = check_types(name, kind, reference.dtype, current.dtype)
    ref, ref_missing = _present(reference, ref_family)
    cur, cur_missing = _present(current, ref_family) if cur_family != "null" else (ref[:0], 1.0)
    if len(ref) == 0:
        raise DriftInputError(f"column {name!r}: the reference has no non-missing values to compare with")
    integer = (reference.dtype.is_integer() and current.dtype.is_integer()
               and reference.null_count() == 0 and current.null_count() == 0)
    return ColumnData(name, kind, ref, cur, integer, cur_missing, ref_missing)


def auto_method(data: ColumnData) -> str:
    """Evidently's automatic method for this column (see the module docstring)."""
    small = len(data.reference) <= SMALL_REFERENCE
    n_values = data.distinct_values()
    if data.kind == "numerical" and n_values > FEW_VALUES:
        return "ks" if small else "wasserstein"
    if not small:
        return "jensenshannon"
    return "chisquare" if n_values > 2 else "z"


def configured(column: str, kind: str, cfg: DriftConfig) -> tuple[str | None, float | None]:
    """The configured method (None = automatic) and threshold (None = the method's default): per column, then
    per kind (methods) or global (thresholds), as Evidently resolves them."""
    method = cfg.per_column_method.get(column, cfg.num_method if kind == "numerical" else cfg.cat_method)
    threshold = cfg.per_column_threshold.get(column, cfg.threshold)
    return method, threshold


def score(method: str, data: ColumnData) -> float:
    """The method's score on the column's non-missing values."""
    if method == "ks":
        return methods.ks(data.reference, data.current)
    if method == "wasserstein":
        return methods.wasserstein_normed(data.reference, data.current)
    if method == "chisquare":
        return methods.chisquare(data.counts())
    if method == "z":
        return methods.z_test(data.counts())
    ref, cur = data.shares()
    return methods.jensenshannon(ref, cur) if method == "jensenshannon" else methods.psi(ref, cur)


def column_drift(data: ColumnData, method: str | None = None, threshold: float | None = None) -> ColumnDrift:
    """Test one column with ``method`` (None = automatic); a current side with no values is drifted, with a note
    and no score. A configured method that does not apply to the column's kind raises ``DriftInputError``."""
    empty = len(data.current) == 0
    if method is None:  # an empty current side: chosen as if the current looked like the reference
        method = auto_method(data if not empty else ColumnData(data.name, data.kind, data.reference,
                                                               data.reference, data.integer, 0.0, 0.0))
    elif data.kind not in METHODS[method].kinds:
        raise DriftInputError(f"column {data.name!r}: method {method!r} does not apply to a {data.kind} column; "
                              f"choose one of {sorted(m for m, s in METHODS.items() if data.kind in s.kinds)}")
    spec = METHODS[method]
    limit = spec.default_threshold if threshold is None else threshold
    common: dict[str, Any] = {
        "column": data.name, "kind": data.kind, "method": method, "threshold": limit,
        "reference_rows": len(data.reference), "current_rows": len(data.current), "null_share": data.null_share,
        "reference_null_share": data.reference_null_share}
    if empty:
        return ColumnDrift(score=None, drifted=True, **common,
                           note="every current value is missing: counted as drifted (Evidently cannot test an "
                                "empty column and raises)")
    value = score(method, data)
    return ColumnDrift(score=value, drifted=spec.drifted(value, limit), **common, note=_categories_note(data))


def _categories_note(data: ColumnData) -> str:
    """Names values seen on one side only, for columns tested by value."""
    if data._counts is None:
        return ""
    c = data._counts
    new = [k for k, r in zip(c.keys, c.reference, strict=True) if r == 0]
    gone = [k for k, n in zip(c.keys, c.current, strict=True) if n == 0]
    parts = [f"{label}: {', '.join(map(str, vals[:10]))}{' …' if len(vals) > 10 else ''}"
             for label, vals in (("new in current", new), ("absent from current", gone)) if vals]
    return "; ".join(parts)


def drift_columns(reference: pl.DataFrame, current: pl.DataFrame, kinds: dict[str, str],
                  cfg: DriftConfig) -> list[ColumnDrift]:
    """Test each column of ``kinds`` (name -> ``numerical`` / ``categorical``) with its configured or automatic
    method and threshold; both frames must hold every column."""
    out = []
    for name, kind in kinds.items():
        method, threshold = configured(name, kind, cfg)
        out.append(column_drift(prepare(name, kind, reference.get_column(name), current.get_column(name)),
                                method, threshold))
    return out
