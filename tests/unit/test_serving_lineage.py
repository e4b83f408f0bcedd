"""Lineage: what the trainer records in the model card, the training-set hash, the typed view the serving side
reads (also from cards written before lineage), and the server's command line in KServe's spelling."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import components
from components.data.breast_cancer import breast_cancer_events
from components.serving.lineage import Lineage, model_version
from components.serving.predictor import v2_datatype
from components.serving.server import parser
from components.training.model import CARD_FILE, DATA_VERSION_ENV, IMAGE_ENV, training_set_sha256
from components.training.trainer import main

CONFIG = json.dumps({"hidden_sizes": [4], "max_epochs": 1, "keep_checkpoints": 1})


@pytest.fixture(scope="module")
def bc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bc") / "bc.parquet"
    breast_cancer_events().write_parquet(path)
    return path


def test_training_set_hash_of_a_file_is_the_sha256_of_its_bytes(bc_file: Path) -> None:
    assert training_set_sha256(str(bc_file)) == hashlib.sha256(bc_file.read_bytes()).hexdigest()
    assert training_set_sha256(f"file://{bc_file}") == hashlib.sha256(bc_file.read_bytes()).hexdigest()


def test_training_set_hash_of_a_folder_covers_its_data_files_by_name_and_content(tmp_path: Path) -> None:
    df = breast_cancer_events()
    folder = tmp_path / "parts"
    folder.mkdir()
    df.head(200).write_parquet(folder / "a.parquet")
    df.tail(369).write_parquet(folder / "b.parquet")
    first = training_set_sha256(str(folder))
    (folder / "_SUCCESS").write_text("")  # files the trainer does not read do not count
    (folder / ".hidden").write_text("x")
    assert training_set_sha256(str(folder)) == first
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert training_set_sha256(str(copy)) == first  # the folder's own path is not part of it
    (copy / "b.parquet").rename(copy / "c.parquet")
    assert training_set_sha256(str(copy)) != first
    df.tail(368).write_parquet(folder / "b.parquet")
    assert training_set_sha256(str(folder)) != first


def test_trainer_records_lineage_in_the_card(bc_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IMAGE_ENV, "ghcr.io/kfp-component-catalog/torch:0.1.0")
    monkeypatch.setenv(DATA_VERSION_ENV, "from-env")
    assert main(["--config", CONFIG, "--data-uri", str(bc_file), "--output-uri", str(tmp_path / "flag"),
                 "--data-version", "2026-11-23"]) == 0
    assert main(["--config", CONFIG, "--data-uri", str(bc_file), "--output-uri", str(tmp_path / "env")]) == 0
    flag = json.loads((tmp_path / "flag" / "model" / CARD_FILE).read_text())
    env = json.loads((tmp_path / "env" / "model" / CARD_FILE).read_text())
    assert flag["data_version"] == "2026-11-23" and env["data_version"] == "from-env"
    for card in (flag, env):
        assert card["training_set_sha256"] == hashlib.sha256(bc_file.read_bytes()).hexdigest()
        assert card["package_version"] == components.__version__
        assert card["image"] == "ghcr.io/kfp-component-catalog/torch:0.1.0"
        assert card["data_uri"] == str(bc_file) and card["threshold"] == 0.5
    lineage = Lineage.read(str(tmp_path / "flag" / "model"))
    assert lineage.version == flag["weights_sha256"][:12] == model_version(flag)
    assert (lineage.data_version, lineage.training_set_sha256, lineage.image) == (
        "2026-11-23", flag["training_set_sha256"], flag["image"])
    assert lineage.metrics["test_auc"] == flag["metrics"]["test_auc"]
    assert lineage.trainer_config == flag["trainer_config"] and lineage.model_uri == str(tmp_path / "flag" / "model")
    text = "\n".join(lineage.summary())
    assert "2026-11-23" in text and flag["training_set_sha256"] in text and lineage.version in text


def test_lineage_of_a_card_without_lineage_fields_reads_as_unknown() -> None:
    old = {"weights_sha256": "ab" * 32, "metrics": {"test_auc": 0.9}, "trainer_config": {"lr": 0.01},
           "data_uri": "s3://bucket/train.parquet"}
    lineage = Lineage.from_card(old, "gs://b/model")
    assert lineage.version == "ab" * 6 and lineage.data_uri == "s3://bucket/train.parquet"
    assert (lineage.data_version, lineage.training_set_sha256, lineage.package_version, lineage.image) == ("",) * 4
    assert Lineage.from_card(old, version="v3").version == "v3"
    assert json.loads(json.dumps(lineage.to_dict()))["metrics"] == {"test_auc": 0.9}
    assert "data         version -" in "\n".join(lineage.summary())
    with pytest.raises(ValueError, match="no weights_sha256"):
        model_version({"metrics": {}})


def test_server_takes_our_arguments_and_kserves_own_spelling() -> None:
    ours = parser().parse_args(["--model-uri", "/m", "--name", "bc", "--http-port", "9001", "--model-version", "v2"])
    assert (ours.model_uri, ours.model_name, ours.http_port, ours.model_version) == ("/m", "bc", 9001, "v2")
    runtime = parser().parse_args(["--model_name=bc", "--model_dir=/mnt/models", "--http_port=8080"])
    assert (runtime.model_uri, runtime.model_name, runtime.http_port, runtime.model_version) == (
        "/mnt/models", "bc", 8080, None)
    with pytest.raises(SystemExit):
        parser().parse_args(["--name", "bc"])  # no model


@pytest.mark.parametrize(("dtype", "kind", "datatype"), [
    (pl.Float64, "numeric", "FP64"), (pl.Float32, "numeric", "FP32"), (pl.Int64, "numeric", "INT64"),
    (pl.Int8, "numeric", "INT8"), (pl.UInt16, "numeric", "UINT16"), (pl.Boolean, "numeric", "BOOL"),
    (pl.Decimal(10, 2), "numeric", "FP64"), (pl.String, "categorical", "BYTES"),
    (pl.Enum(["a", "b"]), "categorical", "BYTES")])
def test_card_dtypes_map_to_v2_datatypes(dtype: pl.DataType, kind: str, datatype: str) -> None:
    """The trainer writes polars' dtype names into the card; the v2 metadata lists these datatypes."""
    assert v2_datatype(str(dtype), kind) == datatype
