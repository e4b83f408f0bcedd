"""KFP wrappers of the deployment components: the canary rollout, and the champion lookup the gate needs."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components._core.images import image


@dsl.component(base_image=image("serving"), install_kfp_package=False)
def deploy(
    model: Input[Model],
    training_set: Input[Dataset],
    blessing: Input[Artifact],
    record: Output[Artifact],
    config: str = "{}",
    run_id: str = "",
    task: str = "",
) -> NamedTuple("DeployOutputs", promoted=bool, model_uri=str, endpoint=str):  # type: ignore[valid-type]
    """Canary rollout of a model the evaluation gate blessed (an unblessed one is refused) on local model servers,
    a KServe InferenceService or a Vertex endpoint: deploy at N %, wait for honest readiness, smoke-test, compare
    with the stable model on held-out rows, then promote to 100 % or roll back to 0 % automatically. ``record``:
    every state, status, the traffic observed, the decision and both models' lineage. Returns whether it was
    promoted, the model serving now and the endpoint. ``run_id``/``task``: the pipeline passes its job id and task
    name placeholders; they label what is deployed."""
    from components.serving.step import deploy_step

    out = deploy_step(model.path, training_set.path, model_uri=model.uri, blessing_path=blessing.path,
                      record_uri=record.path, config=config, run_id=run_id, task=task)
    record.metadata.update(out.to_metadata())
    return out.promoted, out.serving_uri, out.endpoint


@dsl.component(base_image=image("serving"), install_kfp_package=False)
def serving_champion(config: str = "{}") -> str:
    """The model serving now at the deployment target ``config`` names ('' before the first deployment): the
    champion the evaluation gate compares a candidate with."""
    from components.serving.target import champion_uri

    return champion_uri(config)
