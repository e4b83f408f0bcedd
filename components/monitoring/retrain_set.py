"""The training set of a retrain: the watched model's own training set (its model card's ``data_uri``) followed by
the new batch's rows, in the old set's columns and types. Every row is accounted for: a batch row identical to a
row already in the set (every column equal) is dropped and counted; nothing else is removed.

The batch must hold every column of the old training set (features, label, keys): with the demo repository,
whose feature views read the event table itself, a validated batch is already in training-set form. Feature
views computed from other sources need the training pipeline on the new data instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from components._core.artifacts import read_json, read_table, write_parquet
from components.training.launch import CARD_FILE


class RetrainSetError(ValueError):
    """The old training set cannot be found, or the batch does not fit it; the message names what."""


@dataclass(frozen=True)
class RetrainSet:
    """Row counts of the extended training set."""

    previous_uri: str
    rows_previous: int
    rows_batch: int
    rows_duplicate: int

    @property
    def rows(self) -> int:
        """Rows written."""
        return self.rows_previous + self.rows_batch - self.rows_duplicate

    def to_metadata(self) -> dict[str, object]:
        """Metadata of the training set artifact."""
        return {"previous_training_set": self.previous_uri, "rows_previous": self.rows_previous,
                "rows_batch": self.rows_batch, "rows_duplicate_dropped": self.rows_duplicate, "rows": self.rows}


def _previous(model_uri: str) -> tuple[str, pl.DataFrame]:
    card = read_json(f"{model_uri.rstrip('/')}/{CARD_FILE}")
    uri = str(card.get("data_uri") or "")
    if not uri:
        raise RetrainSetError(f"model card of {model_uri!r} names no training set (data_uri)")
    try:
        return uri, read_table(uri)
    except Exception as err:
        raise RetrainSetError(f"the training set of model {model_uri!r} cannot be read at {uri!r}: {err}") from err


def _fit(batch: pl.DataFrame, schema: pl.Schema, batch_uri: str) -> pl.DataFrame:
    missing = [c for c in schema if c not in batch.columns]
    if missing:
        raise RetrainSetError(f"batch {batch_uri!r} lacks the training set's columns {missing}")
    out = []
    for name, dtype in schema.items():
        try:
            out.append(batch[name].cast(dtype, strict=True))
        except Exception as err:
            raise RetrainSetError(f"batch {batch_uri!r}: column {name!r} ({batch.schema[name]}) does not convert "
                                  f"to the training set's {dtype}: {err}") from err
    return pl.DataFrame(out)


def extend_training_set(model_uri: str, batch_uri: str, out_uri: str) -> RetrainSet:
    """Write the watched model's training set plus the batch at ``batch_uri`` to ``out_uri`` (Parquet)."""
    previous_uri, previous = _previous(model_uri)
    batch = read_table(batch_uri)
    if batch.height == 0:
        raise RetrainSetError(f"batch {batch_uri!r} has no rows")
    fitted = _fit(batch, previous.schema, batch_uri)
    fresh = fitted.join(previous.unique(), on=previous.columns, how="anti", nulls_equal=True)
    combined = pl.concat([previous, fresh], how="vertical")
    write_parquet(combined, out_uri)
    return RetrainSet(previous_uri, previous.height, batch.height, batch.height - fresh.height)
