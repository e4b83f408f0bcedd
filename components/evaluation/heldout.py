"""The held-out rows: the candidate's own test split, recomputed from its model card and the training set exactly
as the trainer drew it (``split_indices`` over the whole table's labels, with the card's seed and fractions), so
candidate and champion are scored on the same rows, none of which the candidate trained on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from components.evaluation.errors import EvaluationError
from components.training.data import DataError, labels, split_indices

SPLIT_KEYS = ("label_column", "seed", "val_fraction", "test_fraction")


@dataclass(frozen=True)
class HeldOut:
    """The held-out rows, their 0/1 labels, their positions in the training set and how they were drawn."""

    rows: pl.DataFrame
    y: np.ndarray
    indices: np.ndarray
    split: dict[str, Any]

    @property
    def positives(self) -> int:
        """Rows labelled 1."""
        return int(self.y.sum())

    def digest(self) -> str:
        """SHA-256 of the row positions: equal digests mean the same held-out rows."""
        return hashlib.sha256(self.indices.astype(np.int64).tobytes()).hexdigest()


def split_of(card: dict[str, Any], role: str = "candidate") -> dict[str, Any]:
    """The card's split parameters (label column, seed, fractions); an error names what the card lacks."""
    config = card.get("trainer_config")
    if not isinstance(config, dict):
        raise EvaluationError(f"{role} model card has no trainer_config: its test split cannot be recomputed")
    missing = [k for k in SPLIT_KEYS if k not in config]
    if missing:
        raise EvaluationError(f"{role} model card's trainer_config lacks {missing}: its test split cannot be "
                              "recomputed")
    return {k: config[k] for k in SPLIT_KEYS}


def heldout_rows(table: pl.DataFrame, card: dict[str, Any]) -> HeldOut:
    """The candidate's test split of ``table`` (the training set it was trained on); fails when the table cannot
    be that training set (label missing or not 0/1, row counts unlike the card's) or the split holds one class."""
    split = split_of(card)
    label = split["label_column"]
    if label not in table.columns:
        raise EvaluationError(f"label column {label!r} of the candidate's model card is not in the training set; "
                              f"columns: {table.columns}")
    try:
        y = labels(table, label)
        train, val, test = split_indices(y, float(split["val_fraction"]), float(split["test_fraction"]),
                                         int(split["seed"]))
    except DataError as err:
        raise EvaluationError(f"training set: {err}") from None
    trained = card.get("metrics", {}).get("rows")
    if isinstance(trained, dict) and trained != {"train": len(train), "val": len(val), "test": len(test)}:
        raise EvaluationError(
            f"the training set ({table.height} rows; split train {len(train)}, val {len(val)}, test {len(test)}) "
            f"is not the one the candidate was trained on (its model card: {trained})")
    y_test = y[test].astype(np.float64)
    if y_test.min() == y_test.max():
        raise EvaluationError(f"the held-out split ({len(test)} rows) holds only class {int(y_test[0])}: "
                              "AUC and the comparison are undefined")
    return HeldOut(rows=table[test], y=y_test, indices=test,
                   split={**split, "table_rows": table.height, "rows": len(test)})
