"""The evaluate wrapper: it compiles to a strict spec on the torch image, and its ``python_func`` on temporary
artifacts with real tiny models fills every output (metrics, the classification metrics the KFP UI draws, the
report, the blessing) and returns the blessing as a bool."""

import json
import math
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl

from catalog.compiler import parse_strict
from components._core.artifacts import read_json
from components._core.config import ConfigError
from components._core.images import image
from components._kfp.evaluate import evaluate
from components.evaluation.errors import ChampionError
from tests.component.artifacts import artifact, outputs
from tests.unit.test_evaluation_models import Models, trained


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained(tmp_path_factory)


def _outs(tmp_path: Path) -> dict[str, dsl.Artifact]:
    return outputs(tmp_path / "out", metrics=dsl.Metrics, classification=dsl.ClassificationMetrics,
                   report=dsl.Markdown, blessing=dsl.Artifact)


def _inputs(models: Models, model: str) -> dict[str, dsl.Artifact]:
    return {"model": artifact(dsl.Model, Path(model)), "training_set": artifact(dsl.Dataset, Path(models.data))}


def test_the_component_compiles_strictly_on_the_torch_image(tmp_path: Path) -> None:
    path = tmp_path / "evaluate.yaml"
    compiler.Compiler().compile(evaluate, str(path))
    spec = yaml.safe_load(path.read_text())
    parse_strict(spec)
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    assert executor["container"]["image"] == image("torch")
    outputs_ = spec["root"]["outputDefinitions"]
    assert outputs_["parameters"]["Output"]["parameterType"] == "BOOLEAN"
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs_["artifacts"].items()} == {
        "metrics": "system.Metrics", "classification": "system.ClassificationMetrics",
        "report": "system.Markdown", "blessing": "system.Artifact"}
    assert "pip install" not in json.dumps(executor)  # install_kfp_package=False: the image has everything


def test_first_deployment_fills_every_output_and_is_blessed(models: Models, tmp_path: Path) -> None:
    outs = _outs(tmp_path)
    config = json.dumps({"slices": {"column": "site", "min_rows": 20}, "roc_points": 25})
    blessed = evaluate.python_func(**_inputs(models, models.good), config=config, **outs)
    assert blessed is True
    doc = read_json(outs["blessing"].path)
    assert doc["decision"] == "blessed" and doc["slices"]["column"] == "site"
    assert outs["blessing"].metadata["blessed"] is True and outs["blessing"].metadata["champion_uri"] == ""
    metrics = outs["metrics"].metadata
    assert metrics["auc"] == doc["candidate"]["metrics"]["auc"] > 0.97 and metrics["blessed"] == 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    cm = outs["classification"].metadata["confusionMatrix"]
    assert [s["displayName"] for s in cm["annotationSpecs"]] == ["0", "1"]
    assert [r["row"] for r in cm["rows"]] == doc["confusion_matrix"]["matrix"]
    assert sum(sum(r["row"]) for r in cm["rows"]) == doc["heldout"]["rows"]
    roc = outs["classification"].metadata["confidenceMetrics"]
    assert 3 <= len(roc) <= 25
    assert all(math.isfinite(p["confidenceThreshold"]) and 0 <= p["recall"] <= 1 for p in roc)
    json.dumps(outs["classification"].metadata, allow_nan=False)  # what KFP writes must be plain JSON
    assert Path(outs["report"].path).read_text().startswith("# Evaluation: BLESSED")


def test_a_worse_candidate_than_the_champion_returns_false(models: Models, tmp_path: Path) -> None:
    outs = _outs(tmp_path)
    blessed = evaluate.python_func(**_inputs(models, models.weak), champion_uri=models.good, **outs)
    assert blessed is False
    meta = outs["blessing"].metadata
    assert meta["blessed"] is False and meta["decision"] == "not blessed" and meta["champion_uri"] == models.good
    assert meta["comparison_metric"] == "auc" and meta["comparison_difference"] < -0.01
    assert "worse than the champion" in meta["reasons"]
    assert outs["metrics"].metadata["blessed"] == 0.0 and "champion_auc" in outs["metrics"].metadata


def test_bad_config_and_an_unusable_champion_fail_the_step(models: Models, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"EvaluationConfig\.comparison\.tolerance"):
        evaluate.python_func(**_inputs(models, models.good), config='{"comparison": {"tolerance": "small"}}',
                             **_outs(tmp_path))
    with pytest.raises(ChampionError, match=r"\['extra'\]"):
        evaluate.python_func(**_inputs(models, models.good), champion_uri=models.extra_feature, **_outs(tmp_path))
    assert not Path(_outs(tmp_path)["blessing"].path).exists()
