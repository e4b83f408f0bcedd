"""The monitoring pipeline, whole, under kfp.local through the ``catalog`` CLI, after the training pipeline has
put a model into service (with one tuning trial and one rank, to keep the tier short): an unshifted later batch
ends without retraining and the summary says why; a shifted batch retrains, gates and rolls out, and the served
model changes only if the new one is blessed; a batch that fails validation stops the loop before drift with its
quarantine kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from catalog.cli import main
from components.serving.canary.local import LocalServing
from components.serving.target import DeployConfig
from tests.local.params import QUICK

pytestmark = pytest.mark.slow
LATER = "demo://events?rows=3000&bad_share=0.02&start=2026-03-02"
RETRAIN_TASKS = {"extend-training-set", "tune", "train", "serving-champion", "evaluate"}


def run(root: Path, pipeline: str, *params: str) -> tuple[int, dict]:
    root.mkdir(parents=True, exist_ok=True)
    summary = root / f"{pipeline}.json"
    args = ["run", pipeline, "--root", str(root / "runs"), "--summary", str(summary)]
    for p in params:
        args += ["-p", p]
    code = main(args)
    return code, json.loads(summary.read_text())


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, LocalServing]]:
    """A model put into service by the training pipeline, under this module's serving home."""
    root = tmp_path_factory.mktemp("monitoring")
    home = LocalServing(DeployConfig.parse({"local": {"home": str(root / "serving")}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATALOG_SERVING_HOME", str(root / "serving"))
        code, summary = run(root / "training", "training", *QUICK)
        assert code == 0 and summary["status"] == "SUCCEEDED", summary["error"]
        assert home.stable() is not None
        yield root, home
    home.stop()


def tasks(summary: dict) -> dict[str, dict]:
    return {t["name"]: t for t in summary["tasks"]}


def test_an_unshifted_later_batch_ends_without_retraining(serving: tuple[Path, LocalServing]) -> None:
    root, home = serving
    before = home.stable()
    code, summary = run(root / "calm", "monitoring", f"current_uri={LATER}&seed=21")
    ran = tasks(summary)
    assert code == 0 and set(ran) == {"watched-model", "ingest", "validate-data", "check-drift"}, summary["error"]
    assert ran["watched-model"]["outputs"]["model_uri"] == before.model_uri
    assert ran["check-drift"]["outputs"]["Output"] is False
    assert ran["check-drift"]["notes"][0].startswith("no drift: ")
    assert {n.split(":")[0] for n in summary["not_run"]} == RETRAIN_TASKS | {"deploy"}
    assert all(n.endswith("its branch condition was false") for n in summary["not_run"])
    assert home.stable() == before


def test_a_shifted_batch_retrains_gates_and_changes_the_model_only_if_blessed(
        serving: tuple[Path, LocalServing]) -> None:
    root, home = serving
    before = home.stable()
    code, summary = run(root / "shifted", "monitoring", f"current_uri={LATER}&seed=22&shift=1.5",
                        "data_version=batch-shifted", *QUICK)
    ran = tasks(summary)
    assert code == 0 and summary["status"] == "SUCCEEDED", summary["error"]
    assert ran["check-drift"]["outputs"]["Output"] is True and ran["check-drift"]["notes"][0].startswith("drifted: ")
    assert set(ran) >= RETRAIN_TASKS
    previous = pl.read_parquet(json.loads(Path(before.model_uri, "model_card.json").read_text())["data_uri"])
    extended = pl.read_parquet(ran["extend-training-set"]["outputs"]["training_set"])
    valid = ran["validate-data"]["outputs"]["rows_valid"]
    assert extended.height == ran["extend-training-set"]["outputs"]["Output"] == previous.height + valid
    assert ran["serving-champion"]["outputs"]["Output"] == before.model_uri  # gated against the model serving
    after = home.stable()
    if ran["evaluate"]["outputs"]["Output"]:
        assert "deploy" in ran
        promoted = ran["deploy"]["outputs"]["promoted"]
        assert (after.version != before.version) == promoted
    else:
        assert "deploy" not in ran and after == before


def test_a_batch_that_fails_validation_stops_before_drift(serving: tuple[Path, LocalServing]) -> None:
    root, home = serving
    before = home.stable()
    code, summary = run(root / "bad", "monitoring", "current_uri=demo://events?rows=2000&bad_share=0.3&seed=23"
                        "&start=2026-03-02", "data_version=batch-bad")
    ran = tasks(summary)
    assert code == 1 and summary["status"] == "FAILED" and ran["validate-data"]["status"] == "FAILED"
    assert "quarantine" in summary["error"].lower()
    assert "check-drift: the run stopped before it" in summary["not_run"]
    quarantine = list(Path(summary["run_dir"]).rglob("validate-data/quarantine"))
    assert quarantine and pl.read_parquet(quarantine[0]).height > 0.2 * 2000  # kept, with its reasons
    assert home.stable() == before
