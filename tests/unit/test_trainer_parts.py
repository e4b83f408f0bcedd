"""Trainer building blocks: config, data preparation, metrics, early stopping, distributed env, checkpoints."""

from __future__ import annotations

import io
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import DistributedSampler, TensorDataset

from components._core.config import ConfigError
from components.training.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial,
    save_checkpoint,
)
from components.training.config import EarlyStopping, TrainerConfig
from components.training.data import DataError, Preprocessing, labels, prepare, select_features, split_indices
from components.training.distributed import DistributedEnvError, resolve_env
from components.training.metrics import binary_metrics, roc_auc
from components.training.sampler import shard_indices
from components.training.stopping import Progress


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"dropout") as err:
        TrainerConfig.parse({"dropout": 1.5, "early_stopping": {"metric": "f1"}})
    assert "early_stopping.metric" in str(err.value)
    with pytest.raises(ConfigError, match="hiden_sizes: Extra inputs"):
        TrainerConfig.parse({"hiden_sizes": [8]})
    with pytest.raises(ConfigError, match="20% of rows"):
        TrainerConfig.parse({"val_fraction": 0.5, "test_fraction": 0.4})
    with pytest.raises(ConfigError, match="label or key"):
        TrainerConfig.parse({"feature_columns": ["a", "label"]})
    cfg = TrainerConfig.parse(json.dumps({"hidden_sizes": [8], "early_stopping": {"metric": "val_loss"}}))
    assert cfg.early_stopping.maximize is False and EarlyStopping.parse({}).maximize is True
    assert TrainerConfig.parse(cfg.to_json()) == cfg


def _table() -> pl.DataFrame:
    return pl.DataFrame({
        "entity_id": [1, 2, 3, 4, 5, 6],
        "event_timestamp": [10, 11, 12, 13, 14, 15],
        "x": [1.0, 2.0, None, 4.0, float("nan"), 6.0],
        "flag": [True, False, True, False, True, False],
        "country": ["DE", "FR", "DE", None, "US", "DE"],
        "when": pl.date_range(pl.date(2026, 1, 1), pl.date(2026, 1, 6), eager=True),
        "label": [0, 1, 0, 1, 0, 1],
    })


def test_feature_selection_skips_keys_label_and_unsupported_types() -> None:
    cfg = TrainerConfig.parse({})
    assert select_features(_table(), cfg) == {"x": "numeric", "flag": "numeric", "country": "categorical"}
    with pytest.raises(DataError, match=r"not in the table: \['nope'\]"):
        select_features(_table(), TrainerConfig.parse({"feature_columns": ["x", "nope"]}))
    with pytest.raises(DataError, match="unsupported type"):
        select_features(_table(), TrainerConfig.parse({"feature_columns": ["when"]}))
    with pytest.raises(DataError, match="0/1"):
        labels(_table().with_columns(pl.lit(2).alias("label")), "label")


def test_preprocessing_standardises_encodes_and_round_trips() -> None:
    df = _table()
    pre = Preprocessing.fit(df, select_features(df, TrainerConfig.parse({})), max_categories=2)
    mean, std = pre.numeric["x"]
    assert mean == pytest.approx(13 / 4) and std == pytest.approx(np.std([1, 2, 4, 6]))
    assert pre.categorical["country"] == ["DE", "FR"]  # top 2 by count, ties broken by value
    x = pre.transform(pl.DataFrame({"x": [None, 3.25], "flag": [True, False], "country": ["FR", "XX"]}))
    assert x.shape == (2, pre.width) == (2, 4) and x.dtype == np.float32
    assert x[0, 0] == 0.0 and x[1, 0] == pytest.approx(0.0)  # null -> mean
    assert x[0, 2:].tolist() == [0.0, 1.0] and x[1, 2:].tolist() == [0.0, 0.0]  # unseen -> all zeros
    again = Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict(), sort_keys=True)))  # as in the card
    assert list(again.numeric) == list(pre.numeric) == ["x", "flag"]
    assert np.array_equal(again.transform(df), pre.transform(df), equal_nan=True)
    with pytest.raises(DataError, match="lack feature columns"):
        pre.transform(pl.DataFrame({"x": [1.0]}))


def test_split_is_seeded_stratified_and_disjoint() -> None:
    y = np.array([0.0] * 70 + [1.0] * 30)
    a = split_indices(y, 0.2, 0.1, seed=3)
    b = split_indices(y, 0.2, 0.1, seed=3)
    c = split_indices(y, 0.2, 0.1, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert [int(y[i].sum()) for i in a] == [21, 6, 3]
    with pytest.raises(DataError, match="too few rows"):
        split_indices(np.array([0.0, 1.0]), 0.1, 0.1, seed=0)


def test_prepare_fits_on_train_only() -> None:
    rng = np.random.default_rng(0)
    df = pl.DataFrame({"a": rng.normal(5, 2, 400), "label": rng.integers(0, 2, 400)})
    s = prepare(df, TrainerConfig.parse({}))
    assert [len(v) for v in s.y] == [280, 60, 60]
    assert abs(float(s.x[0][:, 0].mean())) < 1e-5 and abs(float(s.x[1][:, 0].mean())) > 1e-4


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    score = rng.integers(0, 20, 500).astype(float) + y * 3
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))
    m = binary_metrics(np.array([0, 1, 1]), np.array([-2.0, 3.0, -1.0]), "val")
    assert m["val_accuracy"] == pytest.approx(2 / 3) and m["val_auc"] == 1.0
    z = torch.tensor([-2.0, 3.0, -1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor([0.0, 1.0, 1.0]))
    assert m["val_loss"] == pytest.approx(float(expected), rel=1e-6)


def test_early_stopping_patience_min_delta_and_mode() -> None:
    rule = EarlyStopping.parse({"patience": 2, "min_delta": 0.01})
    p = Progress()
    assert [p.update(v, e, rule) for e, v in enumerate([0.5, 0.8, 0.805, float("nan")], 1)] == [
        True, True, False, False]
    assert p.stopped_early and p.best_epoch == 2 and p.best_value == 0.8
    low = Progress()
    loss_rule = EarlyStopping.parse({"metric": "val_loss", "patience": 0})
    assert [low.update(v, e, loss_rule) for e, v in enumerate([1.0, 0.5, 0.7, 0.7, 0.7], 1)] == [
        True, True, False, False, False]
    assert not low.stopped_early and Progress.from_dict(low.to_dict()) == low


def test_env_torchrun_pytorchjob_vertex_and_single() -> None:
    assert resolve_env({}).world_size == 1
    tr = resolve_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                      "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "x"})
    assert (tr.rank, tr.world_size, tr.local_rank, tr.source) == (1, 2, 1, "torchrun")
    pj = resolve_env({"RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"})
    assert (pj.rank, pj.local_rank, pj.master_addr, pj.master_port, pj.source) == (
        3, 0, "job-master-0", 23456, "env")
    spec = {"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
                        "workerpool1": ["w-0:2222", "w-1:2222"]},
            "environment": "cloud", "task": {"type": "workerpool1", "index": 1}, "job": "{}"}
    vx = resolve_env({"CLUSTER_SPEC": json.dumps(spec)})
    assert (vx.rank, vx.world_size, vx.master_addr, vx.master_port, vx.source) == (
        2, 3, "cmle-training-workerpool0-ab-0", 2222, "vertex")
    chief = resolve_env({"CLUSTER_SPEC": json.dumps({**spec, "task": {"type": "workerpool0", "index": 0}})})
    assert chief.rank == 0 and chief.is_main
    with pytest.raises(DistributedEnvError, match="workerpool3"):
        resolve_env({"CLUSTER_SPEC": json.dumps({**spec, "task": {"type": "workerpool3", "index": 0}})})
    with pytest.raises(DistributedEnvError, match="outside world size"):
        resolve_env({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"})
    with pytest.raises(DistributedEnvError, match="MASTER_ADDR"):
        resolve_env({"RANK": "0", "WORLD_SIZE": "2"})


def test_checkpoints_rotate_and_load_without_pickles(tmp_path: Path) -> None:
    out = str(tmp_path)
    assert latest_checkpoint(out) is None
    for epoch in (1, 2, 3):
        save_checkpoint({"epoch": epoch, "w": torch.full((2,), float(epoch)), "h": [{"a": 1.5}]}, out, epoch, 2)
    partial = tmp_path / "checkpoints" / ".tmp-0a1b-epoch-000004.pt"  # what a killed writer leaves
    partial.write_bytes(b"half")
    assert [e for e, _ in list_checkpoints(out)] == [2, 3]
    remove_partial(out)
    assert not partial.exists() and len(list_checkpoints(out)) == 2
    state = load_checkpoint(str(latest_checkpoint(out)))
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.full((2,), 3.0)) and state["h"] == [{"a": 1.5}]
    buf = io.BytesIO()
    torch.save({"evil": OrderedDict(a=1), "obj": np.random.default_rng(0)}, buf)  # needs arbitrary unpickling
    (tmp_path / "checkpoints" / "epoch-000009.pt").write_bytes(buf.getvalue())
    with pytest.raises(pickle.UnpicklingError, match=r"[Ww]eights only"):
        load_checkpoint(str(latest_checkpoint(out)))


@pytest.mark.parametrize(("n", "world"), [(10, 1), (10, 3), (7, 2), (2, 5), (1, 4)])
def test_shard_indices_match_torch_distributed_sampler(n: int, world: int) -> None:
    data = TensorDataset(torch.zeros(n))
    for rank in range(world):
        for shuffle, epoch in ((True, 0), (True, 3), (False, 0)):
            ref: DistributedSampler[int] = DistributedSampler(data, num_replicas=world, rank=rank,
                                                              shuffle=shuffle, seed=11, drop_last=False)
            ref.set_epoch(epoch)
            got = shard_indices(n, world, rank, seed=11, epoch=epoch, shuffle=shuffle)
            assert got.tolist() == list(ref)
    with pytest.raises(ValueError, match="rank"):
        shard_indices(4, 2, 2)
