"""The gate's branch, run under kfp.local: a pipeline of the real ``evaluate`` wrapper and a stand-in deploy
step inside ``dsl.If(evaluate.outputs["Output"] == True)``; the deploy step runs when the candidate is blessed and
does not run when it is not, and the same pipeline compiles strictly for Kubeflow and Vertex.

Why the wrapper returns a bare bool: kfp.local (2.17) resolves a condition's operand only as a pipeline input or
as ``<task>-Output``; a NamedTuple field (``<task>-blessed``) in a root-level ``dsl.If`` is "unresolved", the
condition counts as false and the run still succeeds (see the last test). The single return value resolves at
the root and inside nested groups. ``task.output`` cannot be used: the task also has artifact outputs.
"""

import json
from pathlib import Path
from typing import NamedTuple

import pytest
from kfp import compiler, dsl, local
from kfp.dsl import Artifact, Input

from catalog.compiler import build_vertex_job, load_documents, parse_strict
from catalog.lint import lint
from catalog.local_run import TaskRecord, TaskRecorder
from components._core.images import image
from components._kfp.evaluate import evaluate
from pipelines.targets import Target, configure
from tests.unit.test_evaluation_models import Models, trained

pytestmark = pytest.mark.slow


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def deploy(blessing: Input[Artifact]) -> str:
    """Stand-in for the canary step: refuses a blessing that is not one, returns the model it would deploy."""
    import json

    with open(blessing.path) as fh:
        doc = json.load(fh)
    if not doc["blessed"]:
        raise RuntimeError(f"asked to deploy a model that is not blessed: {doc['reasons']}")
    return str(doc["candidate"]["lineage"]["uri"])


def gate_pipeline(target: Target) -> dsl.graph_component.GraphComponent:
    """Evaluate the model at ``model_uri`` on ``training_set_uri``; deploy only when blessed."""

    @dsl.pipeline(name="gate-branching")
    def gate_branching(model_uri: str, training_set_uri: str, config: str = "{}", champion_uri: str = "") -> None:
        model = dsl.importer(artifact_uri=model_uri, artifact_class=dsl.Model)
        data = dsl.importer(artifact_uri=training_set_uri, artifact_class=dsl.Dataset)
        gate = configure(evaluate(model=model.output, training_set=data.output, config=config,
                                  champion_uri=champion_uri), target, display_name="evaluate")
        with dsl.If(gate.outputs["Output"] == True, name="blessed"):  # noqa: E712  (a bare output does not compile)
            configure(deploy(blessing=gate.outputs["blessing"]), target, display_name="deploy", cache=False)

    return gate_branching


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return trained(tmp_path_factory)


def run_locally(tmp_path: Path, pipeline: dsl.graph_component.GraphComponent,
                **arguments: str) -> tuple[dict[str, TaskRecord], Path]:
    """Run ``pipeline`` under kfp.local; the tasks that ran (by component name) and the run's folder."""
    root = tmp_path / "root"
    (tmp_path / "logs").mkdir()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    recorder = TaskRecorder(tmp_path / "logs", lambda event, record: None)
    with recorder.installed():
        pipeline(**arguments)
    (run_dir,) = root.iterdir()
    return {t.name: t for t in recorder.tasks}, run_dir


def test_a_blessed_candidate_is_deployed(models: Models, tmp_path: Path) -> None:
    tasks, run_dir = run_locally(tmp_path, gate_pipeline(Target.LOCAL), model_uri=models.good,
                                 training_set_uri=models.data)
    assert tasks["evaluate"].status == "SUCCEEDED" and tasks["evaluate"].outputs["Output"] is True
    assert "deploy" in tasks, "the blessed branch was skipped"
    assert tasks["deploy"].status == "SUCCEEDED" and tasks["deploy"].outputs["Output"] == models.good
    assert (run_dir / "deploy").is_dir()
    assert json.loads((run_dir / "evaluate" / "blessing").read_text())["blessed"] is True


def test_a_candidate_that_is_not_blessed_is_not_deployed(models: Models, tmp_path: Path) -> None:
    tasks, run_dir = run_locally(tmp_path, gate_pipeline(Target.LOCAL), model_uri=models.weak,
                                 training_set_uri=models.data, champion_uri=models.good)
    assert tasks["evaluate"].status == "SUCCEEDED" and tasks["evaluate"].outputs["Output"] is False
    assert "deploy" not in tasks and not (run_dir / "deploy").exists()
    blessing = json.loads((run_dir / "evaluate" / "blessing").read_text())
    assert blessing["decision"] == "not blessed"
    assert any("worse than the champion" in reason for reason in blessing["reasons"])


@pytest.mark.parametrize("target", [Target.KUBEFLOW, Target.VERTEX])
def test_the_branch_compiles_strictly_for_both_targets(target: Target, tmp_path: Path) -> None:
    path = tmp_path / f"{target.value}.yaml"
    compiler.Compiler().compile(gate_pipeline(target), str(path))
    docs = load_documents(path)
    spec = parse_strict(docs[0])
    assert lint(docs, target.value) == []
    (branch,) = [t for t in spec.root.dag.tasks.values() if t.task_info.name == "blessed"]
    assert branch.trigger_policy.condition == "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert list(branch.dependent_tasks) == ["evaluate"]
    assert len(docs) == (2 if target == Target.KUBEFLOW else 1)
    if target == Target.VERTEX:
        job = build_vertex_job(path)  # aiplatform.PipelineJob accepts it, offline
        assert job["pipelineSpec"]["root"]["dag"]["tasks"]["condition-1"]["taskInfo"]["name"] == "blessed"


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def gate_fields(blessed: bool) -> NamedTuple("Gate", blessed=bool):  # type: ignore[valid-type]
    return (blessed,)


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def reached() -> str:
    return "ran"


def test_kfp_local_still_skips_a_root_level_condition_on_a_named_tuple_field(tmp_path: Path) -> None:
    """The pitfall the bare-bool output avoids. If this starts failing, kfp.local resolves NamedTuple fields and
    ``evaluate`` could return one."""

    @dsl.pipeline(name="named-tuple-gate")
    def named_tuple_gate() -> None:
        gate = gate_fields(blessed=True)
        with dsl.If(gate.outputs["blessed"] == True):  # noqa: E712
            reached()

    tasks, _ = run_locally(tmp_path, named_tuple_gate)
    assert tasks["gate-fields"].outputs["blessed"] is True and "reached" not in tasks
