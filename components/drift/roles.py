"""Column roles of a drift check: which reference columns are numerical, which categorical, and which one holds
the model's prediction. Built from the model card's features and the reference sample."""

from __future__ import annotations

from typing import Any, Self

import polars as pl
from pydantic import Field, model_validator

from components._core.config import StrictConfig

# Evidently 0.7.23 types a column it is not told about by dtype (evidently/core/datasets.py, infer_column_type):
# floats are numerical, booleans categorical, integers categorical when they have at most this many distinct
# values (INTEGER_CARDINALITY_LIMIT). Its legacy column mapping used 5 (NUMBER_UNIQUE_AS_CATEGORICAL); at test time
# any numerical column with at most 5 distinct values on both sides together is tested by value anyway.
INTEGER_CARDINALITY_LIMIT = 10
NUMERIC_KIND = "numeric"  # the model card's feature kinds (components.training.data)
CATEGORICAL_KIND = "categorical"


class ColumnRoles(StrictConfig):
    """Column name lists by role; a column has one role."""

    numerical: list[str] = Field(default_factory=list, max_length=100_000, description="numerical columns")
    categorical: list[str] = Field(default_factory=list, max_length=100_000, description="categorical columns")
    prediction: str | None = Field(None, min_length=1, description="the model's P(label = 1) column, if any")

    @model_validator(mode="after")
    def _one_role_each(self) -> Self:
        names = [*self.numerical, *self.categorical, *([self.prediction] if self.prediction else [])]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"columns with more than one role: {dup}")
        return self

    @property
    def features(self) -> list[str]:
        """Feature columns (numerical, then categorical)."""
        return [*self.numerical, *self.categorical]

    def kind(self, column: str) -> str:
        """``numerical`` or ``categorical`` (the prediction is numerical)."""
        if column in self.categorical:
            return "categorical"
        if column in self.numerical or column == self.prediction:
            return "numerical"
        raise KeyError(column)


def low_cardinality(series: pl.Series) -> bool:
    """True when Evidently 0.7 types this numeric column as categorical: boolean, or integer with at most
    ``INTEGER_CARDINALITY_LIMIT`` distinct non-null values."""
    if series.dtype == pl.Boolean:
        return True
    return series.dtype.is_integer() and series.drop_nulls().n_unique() <= INTEGER_CARDINALITY_LIMIT


def roles_from_card(card: dict[str, Any], reference: pl.DataFrame, prediction: str | None) -> ColumnRoles:
    """Roles of the card's ``features`` (each ``{"name", "kind"}``): categorical features stay categorical,
    numeric ones are numerical unless ``low_cardinality`` in ``reference``."""
    numerical: list[str] = []
    categorical: list[str] = []
    for feature in card["features"]:
        name, kind = feature["name"], feature["kind"]
        if kind == CATEGORICAL_KIND or (kind == NUMERIC_KIND and low_cardinality(reference.get_column(name))):
            categorical.append(name)
        elif kind == NUMERIC_KIND:
            numerical.append(name)
        else:
            raise ValueError(f"model card feature {name!r} has unknown kind {kind!r}")
    return ColumnRoles(numerical=numerical, categorical=categorical, prediction=prediction)
