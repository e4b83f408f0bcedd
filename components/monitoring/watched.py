"""The model a monitoring run watches: the one serving now at the deployment target, or one given by URI; it must
carry its monitoring bundle (reference sample, column roles, validation contract)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from components.drift.bundle import BundleError, read_bundle
from components.serving.target import DeployConfig, champion_uri


class NothingServing(RuntimeError):
    """No model serves at the deployment target and no model URI was given."""


@dataclass(frozen=True)
class Watched:
    """The watched model's URI and its validation contract (JSON text, as ``validate_data`` takes it)."""

    model_uri: str
    contract: str


def watched_model(config: DeployConfig | dict[str, Any] | str, model_uri: str = "", **clients: Any) -> Watched:
    """``model_uri`` when given, else the model serving now at ``config``'s target; raises ``NothingServing``
    when there is none, and ``BundleError`` naming what is missing when it carries no monitoring bundle or no
    contract (a model trained before the bundle existed: retrain it with the training pipeline)."""
    cfg = DeployConfig.parse(config)
    uri = model_uri.strip() or champion_uri(cfg, **clients)
    if not uri:
        raise NothingServing(f"no model is serving at the {cfg.backend} target (service {cfg.service!r}): run the "
                             "training pipeline first, or pass model_uri")
    bundle = read_bundle(uri)
    if bundle.contract is None:
        raise BundleError(f"model at {uri!r} carries no validation contract in its monitoring bundle: the new "
                          "batch could not be checked as its training data was; retrain it with a contract")
    return Watched(uri, json.dumps(bundle.contract, sort_keys=True))
