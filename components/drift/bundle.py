"""The monitoring bundle a trained model carries in ``<model folder>/monitoring/``:

- ``reference.parquet``: a seeded sample of at most ``max_rows`` (default 20,000) training rows, the model's
  feature columns only, plus ``prediction``: the model's P(label = 1) on each row;
- ``roles.json``: the ``ColumnRoles`` (numerical, categorical, prediction) of those columns;
- ``contract.json``: the validation contract the training data passed, when one is given (stored as given);
- ``bundle.json``: the format, how the sample was drawn (rows, source rows, bound, seed) and the model's
  ``weights_sha256``, so a check can say what it compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from components._core.artifacts import filesystem, read_json, read_table, write_json, write_parquet
from components.drift.roles import ColumnRoles, roles_from_card
from components.drift.sample import bounded, describe
from components.training.model import load_model, predict_proba

MONITORING_DIR = "monitoring"
REFERENCE_FILE = "reference.parquet"
ROLES_FILE = "roles.json"
CONTRACT_FILE = "contract.json"
INFO_FILE = "bundle.json"
BUNDLE_FORMAT = "monitoring-bundle/v1"
PREDICTION = "prediction"
DEFAULT_MAX_ROWS = 20_000


class BundleError(ValueError):
    """A model folder has no (complete) monitoring bundle, or one cannot be written for it."""


@dataclass(frozen=True)
class Bundle:
    """A model's monitoring bundle, read or just written."""

    model_dir: str
    reference: pl.DataFrame
    roles: ColumnRoles
    contract: dict[str, Any] | None
    info: dict[str, Any]

    def sample_note(self) -> str:
        """How the reference was drawn from the training rows, in words."""
        i = self.info
        return describe(int(i["rows"]), int(i["source_rows"]), i.get("max_rows"), int(i["seed"]))


def _path(model_dir: str, name: str) -> str:
    return f"{model_dir.rstrip('/')}/{MONITORING_DIR}/{name}"


def write_bundle(model_dir: str, training_set: pl.DataFrame, *, contract: dict[str, Any] | None = None,
                 max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0) -> Bundle:
    """Write ``monitoring/`` into the model folder ``model_dir`` from the rows the model was trained on: a
    seeded sample of at most ``max_rows`` rows of its features with the model's predictions, the column roles
    and, if given, the validation ``contract``. Raises ``BundleError`` naming what is wrong."""
    if max_rows < 1:
        raise BundleError(f"max_rows must be at least 1, got {max_rows}")
    model, card = load_model(model_dir)
    features = [f["name"] for f in card["features"]]
    if PREDICTION in features:
        raise BundleError(f"model {model_dir!r} has a feature named {PREDICTION!r}, the reference's prediction "
                          "column; rename the feature")
    missing = [c for c in features if c not in training_set.columns]
    if missing:
        raise BundleError(f"training set lacks the model's feature columns {missing} (model {model_dir!r})")
    if training_set.height == 0:
        raise BundleError(f"training set for model {model_dir!r} has no rows")
    rows = bounded(training_set.select(features), max_rows, seed)
    reference = rows.with_columns(pl.Series(PREDICTION, predict_proba(model, card, rows)))
    roles = roles_from_card(card, reference, PREDICTION)
    info = {"format": BUNDLE_FORMAT, "rows": rows.height, "source_rows": training_set.height,
            "max_rows": max_rows, "seed": seed, "weights_sha256": card.get("weights_sha256", "")}
    write_parquet(reference, _path(model_dir, REFERENCE_FILE))
    write_json(roles.model_dump(mode="json"), _path(model_dir, ROLES_FILE))
    if contract is not None:
        write_json(contract, _path(model_dir, CONTRACT_FILE))
    write_json(info, _path(model_dir, INFO_FILE))
    return Bundle(model_dir, reference, roles, contract, info)


def read_bundle(model_dir: str) -> Bundle:
    """Read the bundle of the model folder ``model_dir``; a missing file raises ``BundleError`` naming it and
    the folder."""
    for name in (REFERENCE_FILE, ROLES_FILE, INFO_FILE):
        fs, path = filesystem(_path(model_dir, name))
        if not fs.exists(path):
            raise BundleError(f"model folder {model_dir!r} has no monitoring bundle: {MONITORING_DIR}/{name} is "
                              "missing (components.drift.bundle.write_bundle writes it after training)")
    fs, contract_path = filesystem(_path(model_dir, CONTRACT_FILE))
    contract = read_json(_path(model_dir, CONTRACT_FILE)) if fs.exists(contract_path) else None
    info = read_json(_path(model_dir, INFO_FILE))
    if info.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{_path(model_dir, INFO_FILE)}: bundle format {info.get('format')!r} is not "
                          f"{BUNDLE_FORMAT}")
    return Bundle(model_dir, read_table(_path(model_dir, REFERENCE_FILE)),
                  ColumnRoles.parse(read_json(_path(model_dir, ROLES_FILE))), contract, info)
