"""The trainer in one process: outputs, served model, resume determinism, categorical data, remote URIs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from components._core.artifacts import filesystem, read_json
from components.data.breast_cancer import breast_cancer_events
from components.data.events import generate_events
from components.training.checkpoint import list_checkpoints
from components.training.config import TrainerConfig
from components.training.data import split_indices
from components.training.distributed import DistEnv
from components.training.metrics import roc_auc
from components.training.model import cpu_state, load_model, predict_proba, weights_digest
from components.training.trainer import TrainingError, main, train

SINGLE = DistEnv()


@pytest.fixture(scope="module")
def bc(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, str]:
    df = breast_cancer_events()
    path = tmp_path_factory.mktemp("bc") / "bc.parquet"
    df.write_parquet(path)
    return df, str(path)


def _cfg(**kw: Any) -> TrainerConfig:
    return TrainerConfig.parse({"hidden_sizes": [16], "batch_size": 32, **kw})


def test_outputs_follow_the_contract_and_serve_the_same_auc(bc: tuple[pl.DataFrame, str], tmp_path: Path) -> None:
    df, data = bc
    cfg = _cfg(max_epochs=12, early_stopping={"patience": 3})
    final = train(cfg, data, str(tmp_path), SINGLE)
    assert final == read_json(str(tmp_path / "final_metrics.json"))
    assert final["test_auc"] >= 0.95 and final["rows"] == {"train": 397, "val": 86, "test": 86}
    assert final["epochs_run"] <= 12 and final["stopped_early"] == (final["epochs_run"] < 12)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, final["epochs_run"] + 1))
    assert {"train_loss", "val_auc", "val_loss", "val_accuracy"} <= set(lines[0])
    assert max(r["val_auc"] for r in lines) == final["val_auc"]  # best epoch restored
    assert len(list_checkpoints(str(tmp_path))) == cfg.keep_checkpoints

    model, card = load_model(str(tmp_path / "model"))
    assert not model.training and card["weights_sha256"] == final["weights_sha256"]
    assert [f["name"] for f in card["features"]] == [c for c in df.columns if c not in
                                                      ("entity_id", "event_timestamp", "label")]
    assert card["metrics"]["test_auc"] == final["test_auc"] and card["versions"]["torch"] == torch.__version__
    _, _, test = split_indices(df["label"].to_numpy().astype(np.float32), cfg.val_fraction, cfg.test_fraction,
                               cfg.seed)
    proba = predict_proba(model, card, df[test].drop("label"))
    assert proba.shape == (len(test),) and ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc(df["label"].to_numpy()[test], proba) == pytest.approx(final["test_auc"], abs=1e-9)


def test_resume_from_a_middle_checkpoint_gives_identical_weights(bc: tuple[pl.DataFrame, str],
                                                                 tmp_path: Path) -> None:
    _, data = bc
    cfg = _cfg(max_epochs=6, keep_checkpoints=10, dropout=0.3, early_stopping={"patience": 0})
    full = train(cfg, data, str(tmp_path / "full"), SINGLE)
    part = tmp_path / "part"
    shutil.copytree(tmp_path / "full", part)
    shutil.rmtree(part / "model")
    (part / "final_metrics.json").unlink()
    for epoch in (4, 5, 6):
        (part / "checkpoints" / f"epoch-{epoch:06d}.pt").unlink()
    resumed = train(cfg, data, str(part), SINGLE)
    assert resumed["resumed_from_epoch"] == 3 and resumed["epochs_run"] == 6
    assert resumed["weights_sha256"] == full["weights_sha256"]
    drop = ("samples_per_second",)
    rows = [[{k: v for k, v in json.loads(x).items() if k not in drop} for x in p.read_text().splitlines()]
            for p in (tmp_path / "full" / "metrics.jsonl", part / "metrics.jsonl")]
    assert rows[0] == rows[1]
    other = train(_cfg(max_epochs=6, dropout=0.3, seed=1, early_stopping={"patience": 0}), data,
                  str(tmp_path / "seed1"), SINGLE)
    assert other["weights_sha256"] != full["weights_sha256"]  # the digest does discriminate


def test_resume_refuses_a_checkpoint_from_another_config(bc: tuple[pl.DataFrame, str], tmp_path: Path) -> None:
    _, data = bc
    train(_cfg(max_epochs=1), data, str(tmp_path), SINGLE)
    longer = train(_cfg(max_epochs=2), data, str(tmp_path), SINGLE)  # more epochs: allowed, resumes
    assert longer["resumed_from_epoch"] == 1 and longer["epochs_run"] == 2
    with pytest.raises(TrainingError, match="another config"):
        train(_cfg(max_epochs=3, lr=0.01), data, str(tmp_path), SINGLE)


def test_categorical_features_and_a_remote_output_uri(tmp_path: Path) -> None:
    from components.data.events import EventsConfig

    df = generate_events(EventsConfig.parse({"rows": 1500, "seed": 3}))
    data = tmp_path / "events.parquet"
    df.write_parquet(data)
    out = "memory://trainer-test/run"
    final = train(_cfg(max_epochs=2), str(data), out, SINGLE)
    fs, path = filesystem(out)
    assert fs.exists(f"{path}/model/model.safetensors") and fs.exists(f"{path}/metrics.jsonl")
    model, card = load_model(f"{out}/model")
    kinds = {f["name"]: f["kind"] for f in card["features"]}
    strings = [c for c, t in df.schema.items() if t == pl.String]
    assert strings and all(kinds[c] == "categorical" for c in strings)
    assert set(card["preprocessing"]["categorical"]) == set(strings)
    rows = df.head(3).with_columns(pl.lit("never-seen").alias(strings[0]))
    assert predict_proba(model, card, rows).shape == (3,)
    assert 0.0 <= final["test_auc"] <= 1.0


def test_load_model_rejects_tampered_weights(bc: tuple[pl.DataFrame, str], tmp_path: Path) -> None:
    _, data = bc
    train(_cfg(max_epochs=1), data, str(tmp_path), SINGLE)
    model, card = load_model(str(tmp_path / "model"))
    assert weights_digest(cpu_state(model)) == card["weights_sha256"]
    card["weights_sha256"] = "0" * 64
    (tmp_path / "model" / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="do not match"):
        load_model(str(tmp_path / "model"))


def test_cli_rejects_a_bad_config(bc: tuple[pl.DataFrame, str], tmp_path: Path) -> None:
    _, data = bc
    assert main(["--config", '{"lr": -1}', "--data-uri", data, "--output-uri", str(tmp_path)]) == 2
    assert not (tmp_path / "metrics.jsonl").exists()
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(_cfg(max_epochs=1).to_json())
    assert main(["--config", str(cfg_file), "--data-uri", data, "--output-uri", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "final_metrics.json").exists()
