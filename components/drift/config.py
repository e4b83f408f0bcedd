"""The drift check's configuration: Evidently's ``DataDriftPreset`` options (drift share, methods, thresholds)
plus the row bounds of the verdict and of the HTML report, and the seed of their samples."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from components._core.config import StrictConfig

Method = Literal["ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi"]
NUMERICAL_METHODS: frozenset[str] = frozenset({"ks", "wasserstein", "jensenshannon", "psi"})
CATEGORICAL_METHODS: frozenset[str] = frozenset({"chisquare", "z", "jensenshannon", "psi"})


class DriftConfig(StrictConfig):
    """What the drift check tests and how; ``None`` methods and thresholds are Evidently's automatic choice."""

    drift_share: float = Field(0.5, gt=0.0, le=1.0,
                               description="the dataset drifts when drifted columns / columns >= this share "
                                           "(Evidently DataDriftPreset's default 0.5)")
    num_method: Method | None = Field(None, description="method for numerical columns; None = automatic")
    cat_method: Method | None = Field(None, description="method for categorical columns; None = automatic")
    per_column_method: dict[str, Method] = Field(default_factory=dict, max_length=10_000,
                                                 description="column -> method, overriding the above")
    per_column_threshold: dict[str, float] = Field(default_factory=dict, max_length=10_000,
                                                   description="column -> threshold, overriding `threshold`")
    threshold: float | None = Field(None, ge=0.0, le=1000.0,
                                    description="threshold of every column; None = each method's default")
    max_rows: int | None = Field(None, ge=100, le=1_000_000_000,
                                 description="most rows of each side the verdict uses (seeded sample); None = all")
    report_rows: int = Field(5_000, ge=100, le=1_000_000,
                             description="most rows of each side in the HTML report's seeded sample")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the verdict's and the report's samples")
    columns: list[str] | None = Field(None, min_length=1, max_length=100_000,
                                      description="feature columns checked; None = every feature of the model")

    @model_validator(mode="after")
    def _methods_fit_their_kind(self) -> Self:
        if self.num_method is not None and self.num_method not in NUMERICAL_METHODS:
            raise ValueError(f"num_method {self.num_method!r} does not apply to numerical columns; "
                             f"choose one of {sorted(NUMERICAL_METHODS)}")
        if self.cat_method is not None and self.cat_method not in CATEGORICAL_METHODS:
            raise ValueError(f"cat_method {self.cat_method!r} does not apply to categorical columns; "
                             f"choose one of {sorted(CATEGORICAL_METHODS)}")
        bad = {c: t for c, t in self.per_column_threshold.items() if not 0.0 <= t <= 1000.0}
        if bad:
            raise ValueError(f"per_column_threshold values must be between 0 and 1000: {bad}")
        return self

    def named_columns(self) -> set[str]:
        """Every column name the config mentions (checked against the model's columns by the step)."""
        return {*(self.columns or []), *self.per_column_method, *self.per_column_threshold}
