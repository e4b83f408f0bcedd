"""Loading a trainer's model folder and scoring the held-out rows with it; failures name the model's role, its
URI and the cause (a champion whose features are missing from the data fails here, never blessed blindly)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from components.evaluation.errors import ChampionError, EvaluationError
from components.training.model import load_model, predict_proba

# Model card fields that say where a model came from; those present are copied into the blessing.
LINEAGE_KEYS = ("format", "weights_sha256", "data_uri", "data_version", "training_set_sha256", "package_version",
                "image", "lineage", "label_column", "threshold", "trainer_config", "metrics", "versions")


@dataclass(frozen=True)
class Scored:
    """One model's probabilities of label 1 on the held-out rows."""

    role: str
    uri: str
    card: dict[str, Any]
    proba: np.ndarray

    def lineage(self) -> dict[str, Any]:
        """The model's URI and the lineage fields its card has (empty ones left out: unknown)."""
        return {"uri": self.uri, **{k: self.card[k] for k in LINEAGE_KEYS if self.card.get(k) not in (None, "")}}


def _error(role: str) -> type[EvaluationError]:
    return ChampionError if role == "champion" else EvaluationError


def load_card_and_model(role: str, uri: str) -> tuple[Any, dict[str, Any]]:
    """``load_model`` (safetensors, no pickle, digest checked) with an error naming the role and the URI."""
    try:
        return load_model(uri)
    except Exception as err:  # missing file, bad JSON, wrong format, digest mismatch: all "cannot be loaded"
        raise _error(role)(f"{role} model at {uri!r} cannot be loaded: {type(err).__name__}: {err}") from err


def score(role: str, uri: str, rows: pl.DataFrame, loaded: tuple[Any, dict[str, Any]] | None = None) -> Scored:
    """Predict P(label = 1) for every row with the model at ``uri`` (``loaded``: it, already loaded)."""
    model, card = loaded or load_card_and_model(role, uri)
    try:
        proba = predict_proba(model, card, rows)
    except Exception as err:  # missing feature columns, uncastable types, a shape the weights reject
        raise _error(role)(f"{role} model at {uri!r} cannot score the held-out rows: {err}") from err
    if not np.isfinite(proba).all():
        raise _error(role)(f"{role} model at {uri!r} predicts non-finite probabilities on "
                           f"{int((~np.isfinite(proba)).sum())} held-out rows")
    return Scored(role=role, uri=uri, card=card, proba=proba)
