"""Tabular data for the trainer: feature selection, a seeded stratified split, and the preprocessing
(standardisation, one-hot vocabularies) learned on the train split and reused unchanged at serving time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from components.training.config import TrainerConfig

NUMERIC_KIND = "numeric"
CATEGORICAL_KIND = "categorical"
UNKNOWN = "__unknown__"


class DataError(ValueError):
    """The training table does not fit the configuration (missing columns, bad label, too few rows)."""


def _kind(dtype: pl.DataType) -> str | None:
    if dtype.is_numeric() or dtype == pl.Boolean:
        return NUMERIC_KIND
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return CATEGORICAL_KIND
    return None


def select_features(df: pl.DataFrame, cfg: TrainerConfig) -> dict[str, str]:
    """Feature name -> kind (``numeric`` / ``categorical``), in table order unless listed explicitly."""
    if cfg.label_column not in df.columns:
        raise DataError(f"label column {cfg.label_column!r} not in the table; columns: {df.columns}")
    if cfg.feature_columns is None:
        skip = {cfg.label_column, *cfg.key_columns}
        kinds = {c: _kind(df.schema[c]) for c in df.columns if c not in skip}
        chosen = {c: k for c, k in kinds.items() if k is not None}
    else:
        missing = [c for c in cfg.feature_columns if c not in df.columns]
        if missing:
            raise DataError(f"feature columns not in the table: {missing}")
        chosen = {}
        for c in cfg.feature_columns:
            kind = _kind(df.schema[c])
            if kind is None:
                raise DataError(f"feature column {c!r} has unsupported type {df.schema[c]}")
            chosen[c] = kind
    if not chosen:
        raise DataError("no usable feature columns (numeric, boolean or string) in the table")
    return chosen


def labels(df: pl.DataFrame, column: str) -> np.ndarray:
    """The label as float32 0/1; nulls or other values are an error."""
    s = df.get_column(column)
    if s.null_count():
        raise DataError(f"label column {column!r} has {s.null_count()} nulls")
    values = s.cast(pl.Float64).to_numpy()
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError(f"label column {column!r} must be 0/1 or boolean; saw {np.unique(values)[:5]}")
    return values.astype(np.float32)


def split_indices(y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified split into sorted train / val / test row indices (same inputs, same split)."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in (0.0, 1.0):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n_val, n_test = round(len(idx) * val_fraction), round(len(idx) * test_fraction)
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val:n_val + n_test])
        parts[0].append(idx[n_val + n_test:])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    if min(len(train), len(val), len(test)) == 0:
        raise DataError(f"too few rows ({len(y)}) for the split: train {len(train)}, val {len(val)}, "
                        f"test {len(test)}")
    return train, val, test


@dataclass(frozen=True)
class Preprocessing:
    """Per-feature transforms learned on the train split; ``to_dict`` goes in the model card."""

    numeric: dict[str, tuple[float, float]]  # name -> (mean, std); nulls and NaN become the mean
    categorical: dict[str, list[str]]  # name -> vocabulary; unseen values encode as all zeros
    order: list[str]  # feature order in the input (numeric first, then categorical)

    @classmethod
    def fit(cls, df: pl.DataFrame, kinds: dict[str, str], max_categories: int) -> Preprocessing:
        """Learn means, standard deviations and vocabularies from ``df`` (the train split)."""
        numeric: dict[str, tuple[float, float]] = {}
        categorical: dict[str, list[str]] = {}
        for name, kind in kinds.items():
            if kind == NUMERIC_KIND:
                x = _numeric(df.get_column(name))
                finite = x[np.isfinite(x)]
                mean = float(finite.mean()) if finite.size else 0.0
                std = float(finite.std()) if finite.size else 0.0
                numeric[name] = (mean, std if std > 1e-12 else 1.0)
            else:
                counts = (df.get_column(name).cast(pl.String).drop_nulls().rename("v").value_counts(name="count")
                          .sort(["count", "v"], descending=[True, False]).head(max_categories))
                categorical[name] = sorted(counts.get_column("v").to_list())
        return cls(numeric, categorical, [*numeric, *categorical])

    @property
    def width(self) -> int:
        """Number of model inputs after encoding."""
        return len(self.numeric) + sum(len(v) for v in self.categorical.values())

    def transform(self, df: pl.DataFrame) -> np.ndarray:
        """Encode ``df`` as a float32 matrix of ``width`` columns; missing columns are an error."""
        missing = [c for c in self.order if c not in df.columns]
        if missing:
            raise DataError(f"rows lack feature columns: {missing}")
        out = np.zeros((df.height, self.width), dtype=np.float32)
        for j, (name, (mean, std)) in enumerate(self.numeric.items()):
            x = _numeric(df.get_column(name))
            out[:, j] = np.where(np.isfinite(x), (x - mean) / std, 0.0)
        j = len(self.numeric)
        for name, vocab in self.categorical.items():
            codes = {v: i for i, v in enumerate(vocab)}
            values = df.get_column(name).cast(pl.String).to_list()
            pos = np.array([codes.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
            hit = pos >= 0
            out[np.flatnonzero(hit), j + pos[hit]] = 1.0
            j += len(vocab)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the model card."""
        return {
            "numeric": {n: {"mean": m, "std": s} for n, (m, s) in self.numeric.items()},
            "categorical": {n: {"vocabulary": v} for n, v in self.categorical.items()},
            "missing": "numeric null/NaN/inf -> train mean (0 scaled); unseen or null category -> all zeros",
            "order": self.order,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        """Inverse of ``to_dict``; feature order comes from ``order`` (JSON writers may sort the maps)."""
        num, cat = d["numeric"], d["categorical"]
        numeric = {n: (float(num[n]["mean"]), float(num[n]["std"])) for n in d["order"] if n in num}
        categorical = {n: [str(x) for x in cat[n]["vocabulary"]] for n in d["order"] if n in cat}
        if len(numeric) + len(categorical) != len(d["order"]) or set(d["order"]) != {*num, *cat}:
            raise DataError("preprocessing 'order' does not list exactly its numeric and categorical features")
        return cls(numeric, categorical, [*numeric, *categorical])


def _numeric(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).fill_null(float("nan")).to_numpy()


@dataclass(frozen=True)
class Splits:
    """Encoded train / val / test arrays and the preprocessing that produced them."""

    x: tuple[np.ndarray, np.ndarray, np.ndarray]
    y: tuple[np.ndarray, np.ndarray, np.ndarray]
    preprocessing: Preprocessing
    kinds: dict[str, str]
    dtypes: dict[str, str]


def prepare(df: pl.DataFrame, cfg: TrainerConfig) -> Splits:
    """Select features, split, fit preprocessing on train, encode all three splits."""
    kinds = select_features(df, cfg)
    y = labels(df, cfg.label_column)
    idx = split_indices(y, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    pre = Preprocessing.fit(df[idx[0]], kinds, cfg.max_categories)
    xs = tuple(pre.transform(df[i]) for i in idx)
    return Splits((xs[0], xs[1], xs[2]), (y[idx[0]], y[idx[1]], y[idx[2]]), pre, kinds,
                  {c: str(df.schema[c]) for c in kinds})
