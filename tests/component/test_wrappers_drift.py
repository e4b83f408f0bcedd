"""The check_drift wrapper: it compiles to a strict spec on the torch image with a boolean output, and its
``python_func`` on temporary artifacts, with a real trained model and its monitoring bundle, returns False for an
unshifted later batch and True for a shifted one, logging metrics, the result's metadata and an HTML report that
states its sample bound."""

import json
from pathlib import Path

import pytest
from kfp import compiler, dsl

from catalog.compiler import load_documents, parse_strict
from components._core.artifacts import read_json
from components._core.images import image
from components._kfp import COMPONENTS, check_drift
from tests.component.artifacts import artifact, outputs
from tests.unit.drift_models import LATER, DriftModel, batch, build, events


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> DriftModel:
    return build(tmp_path_factory.mktemp("drift-wrapper"))


def test_the_component_compiles_strictly_on_the_torch_image(tmp_path: Path) -> None:
    assert COMPONENTS["check_drift"] is check_drift
    compiler.Compiler().compile(check_drift, str(tmp_path / "c.yaml"))
    (spec,) = load_documents(tmp_path / "c.yaml")
    parse_strict(spec)
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == image("torch")
    assert spec["root"]["outputDefinitions"]["parameters"]["Output"]["parameterType"] == "BOOLEAN"
    assert {k: v["artifactType"]["schemaTitle"] for k, v in spec["root"]["outputDefinitions"]["artifacts"].items()} \
        == {"report": "system.HTML", "metrics": "system.Metrics", "result": "system.Artifact"}
    inputs = spec["root"]["inputDefinitions"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in inputs["artifacts"].items()} == {
        "model": "system.Model", "current": "system.Dataset"}
    assert inputs["parameters"]["config"]["defaultValue"] == "{}"
    assert "pip install" not in json.dumps(executor)


@pytest.mark.slow
def test_python_func_on_an_unshifted_and_a_shifted_batch(trained: DriftModel, tmp_path: Path) -> None:
    model = artifact(dsl.Model, Path(trained.model))
    verdicts = {}
    for shift in (0.0, 1.5):
        root = tmp_path / f"shift-{shift}"
        current = artifact(dsl.Dataset, Path(batch(tmp_path, f"current-{shift}",
                                                   events(4_000, seed=21, shift=shift, start=LATER))))
        outs = outputs(root, report=dsl.HTML, metrics=dsl.Metrics, result=dsl.Artifact)
        verdicts[shift] = check_drift.python_func(model=model, current=current, config='{"report_rows": 1000}',
                                                  **outs)
        doc = read_json(outs["result"].path)
        metrics = outs["metrics"].metadata
        assert metrics["drifted"] == float(doc["drifted"]) and metrics["drifted_share"] == doc["drifted_share"]
        assert {f"drift_score.{r['column']}" for r in doc["columns"]} | {"drift_score.prediction"} <= set(metrics)
        assert all(isinstance(v, float) for v in metrics.values())
        assert outs["result"].metadata["drifted"] is doc["drifted"] is verdicts[shift]
        assert outs["result"].metadata["report_rows"] == 1_000
        page = Path(outs["report"].path).read_text()
        assert "bounded by report_rows=1,000 (seed 0): current 1,000 of 4,000 rows" in page
        assert "reference 1,000 of 3,000 rows" in page
    assert verdicts == {0.0: False, 1.5: True}
