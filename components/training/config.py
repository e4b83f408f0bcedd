"""The trainer's configuration: data columns, model, optimisation, early stopping, splits and seed."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from components._core.config import StrictConfig

Metric = Literal["val_auc", "val_loss", "val_accuracy"]


class EarlyStopping(StrictConfig):
    """Stop when the validation metric has not improved for ``patience`` epochs (0 turns it off)."""

    metric: Metric = Field("val_auc", description="validation metric watched")
    mode: Literal["auto", "min", "max"] = Field("auto", description="better is: auto (min for loss)")
    patience: int = Field(5, ge=0, le=10_000, description="epochs without improvement to stop; 0 = off")
    min_delta: float = Field(0.0, ge=0.0, le=1.0, description="smallest change that counts as an improvement")
    restore_best: bool = Field(True, description="keep the weights of the best epoch, not the last one")

    @property
    def maximize(self) -> bool:
        """True when a larger metric is better."""
        return self.mode == "max" or (self.mode == "auto" and self.metric != "val_loss")


class TrainerConfig(StrictConfig):
    """Everything the trainer needs besides the data and output locations."""

    label_column: str = Field("label", min_length=1, description="binary label column (0/1 or bool)")
    feature_columns: list[str] | None = Field(
        None, max_length=10_000,
        description="feature columns; None = every numeric, boolean or string column except label and keys")
    key_columns: list[str] = Field(["entity_id", "event_timestamp"], max_length=100,
                                   description="columns never used as features")
    max_categories: int = Field(100, ge=1, le=10_000,
                                description="one-hot vocabulary size per string column (most frequent kept)")
    hidden_sizes: list[int] = Field([64, 32], max_length=16, description="MLP hidden layer widths")
    dropout: float = Field(0.1, ge=0.0, le=0.9, description="dropout after each hidden layer")
    lr: float = Field(1e-3, gt=0.0, le=1.0, description="AdamW learning rate")
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0, description="AdamW weight decay")
    batch_size: int = Field(64, ge=1, le=1_048_576, description="per-rank mini-batch size")
    max_epochs: int = Field(50, ge=1, le=100_000, description="upper bound on training epochs")
    early_stopping: EarlyStopping = Field(EarlyStopping.parse({}), description="early stopping rule")
    val_fraction: float = Field(0.15, ge=0.01, le=0.5, description="share of rows held out for validation")
    test_fraction: float = Field(0.15, ge=0.01, le=0.5, description="share of rows held out for the test")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the split, the weights, shuffling, dropout")
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="most recent epoch checkpoints kept")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA (NCCL) when present")

    @field_validator("hidden_sizes")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if any(not 1 <= w <= 65_536 for w in v):
            raise ValueError("every hidden size must be between 1 and 65536")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.val_fraction + self.test_fraction > 0.8:
            raise ValueError("val_fraction + test_fraction must leave at least 20% of rows for training")
        if self.label_column in self.key_columns:
            raise ValueError(f"label_column {self.label_column!r} is also a key column")
        if self.feature_columns is not None:
            bad = sorted({self.label_column, *self.key_columns} & set(self.feature_columns))
            if bad:
                raise ValueError(f"feature_columns must not include the label or key columns: {bad}")
            if len(set(self.feature_columns)) != len(self.feature_columns):
                raise ValueError("feature_columns has duplicates")
        return self
