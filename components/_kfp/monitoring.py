"""KFP wrappers of the monitoring components: the watched model, and the training set of a retrain."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._core.images import image


@dsl.component(base_image=image("torch"), install_kfp_package=False)
def watched_model(
    config: str = "{}",
    model_uri: str = "",
) -> NamedTuple("WatchedModel", model_uri=str, contract=str):  # type: ignore[valid-type]
    """The model a monitoring run watches: ``model_uri``, or ("" ) the model serving now at the deployment target
    ``config`` names (the deploy config). Fails when none serves, or when it carries no monitoring bundle or
    contract. Returns its URI (import it with ``dsl.importer``) and its validation contract as JSON."""
    from components.monitoring.watched import watched_model as watched

    out = watched(config, model_uri)
    return out.model_uri, out.contract


@dsl.component(base_image=image("base"), install_kfp_package=False)
def extend_training_set(
    model: Input[Model],
    batch: Input[Dataset],
    training_set: Output[Dataset],
) -> int:
    """The training set of a retrain: ``model``'s own training set (its card's ``data_uri``) followed by the
    validated ``batch`` in the same columns and types; batch rows identical to existing rows are dropped and
    counted. Returns the rows written."""
    from components.monitoring.retrain_set import extend_training_set as extend

    out = extend(model.path, batch.path, training_set.path)
    training_set.metadata.update(out.to_metadata())
    return out.rows
