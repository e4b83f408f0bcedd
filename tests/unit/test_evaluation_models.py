"""Real tiny models for the evaluation tests, trained once per test session in this process by the trainer itself
(world size 1) on breast_cancer written to Parquet, plus the checks that they are what the tests take them for.

``trained(tmp_path_factory)`` is imported by the step, wrapper and kfp.local tests.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from components.data.breast_cancer import breast_cancer_events
from components.training.config import TrainerConfig
from components.training.distributed import DistEnv
from components.training.model import load_model
from components.training.trainer import train

GOOD = {"hidden_sizes": [16], "batch_size": 32, "max_epochs": 10, "early_stopping": {"patience": 3}}
WEAK = {"hidden_sizes": [4], "batch_size": 256, "max_epochs": 1, "lr": 1e-4}  # one slow epoch: barely trained


@dataclass(frozen=True)
class Models:
    """Model folders and the tables they were trained on."""

    data: str  # breast_cancer + a categorical ``site`` column (A 60 %, B 30 %, C 10 % of rows)
    good: str  # trained well on ``data``
    weak: str  # one epoch on ``data``
    shuffled: str  # trained on ``data`` with its labels permuted: no signal on the true labels
    extra_feature: str  # trained on ``data`` plus a column ``extra`` that ``data`` does not have


def table() -> pl.DataFrame:
    """breast_cancer as events, with a categorical column ``site`` to slice by."""
    df = breast_cancer_events()
    site = np.array(["A"] * 6 + ["B"] * 3 + ["C"])[df["entity_id"].to_numpy() % 10]
    return df.with_columns(pl.Series("site", site))


def _train(config: dict[str, Any], data: Path, out: Path) -> str:
    train(TrainerConfig.parse(config), str(data), str(out), DistEnv())
    return str(out / "model")


def _build(root: Path) -> Models:
    df = table()
    data, shuffled, extra = root / "data.parquet", root / "shuffled.parquet", root / "extra.parquet"
    df.write_parquet(data)
    df.with_columns(pl.Series("label", np.random.default_rng(0).permutation(df["label"].to_numpy()))
                    ).write_parquet(shuffled)
    df.with_columns(extra=pl.lit(1.5)).write_parquet(extra)
    return Models(data=str(data), good=_train(GOOD, data, root / "good"), weak=_train(WEAK, data, root / "weak"),
                  shuffled=_train(GOOD, shuffled, root / "shuffled"),
                  extra_feature=_train(GOOD, extra, root / "extra"))


def trained(factory: pytest.TempPathFactory) -> Models:
    """The models, trained on first use in this session (kept in the session's temporary folder: this module may
    be imported under two names, by pytest and by the tests that use it)."""
    root = factory.getbasetemp() / "evaluation-models"
    done = root / "done.json"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        done.write_text(json.dumps(asdict(_build(root))))
    return Models(**json.loads(done.read_text()))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained(tmp_path_factory)


def test_the_models_are_what_the_tests_take_them_for(models: Models) -> None:
    test_auc = {name: load_model(getattr(models, name))[1]["metrics"]["test_auc"]
                for name in ("good", "weak", "shuffled", "extra_feature")}
    assert test_auc["good"] > 0.97 and test_auc["extra_feature"] > 0.97
    assert test_auc["weak"] < 0.9
    feature_names = {f["name"] for f in load_model(models.extra_feature)[1]["features"]}
    assert "extra" in feature_names and "site" in feature_names
