"""The wrapper layer: KFP components that declare typed inputs/outputs and call the logic packages.

``COMPONENTS`` names every reusable component; ``catalog list`` and ``compile.py`` read it.
"""

from __future__ import annotations

from kfp.dsl.base_component import BaseComponent

from components._kfp.deploy import deploy, serving_champion
from components._kfp.drift import check_drift
from components._kfp.evaluate import evaluate
from components._kfp.features import (
    feature_apply,
    feature_materialize,
    feature_online_check,
    feature_training_set,
)
from components._kfp.ingest import ingest
from components._kfp.monitoring import extend_training_set, watched_model
from components._kfp.train import train
from components._kfp.tune import tune
from components._kfp.validate import validate_data

COMPONENTS: dict[str, BaseComponent] = {
    "ingest": ingest,
    "validate_data": validate_data,
    "feature_apply": feature_apply,
    "feature_materialize": feature_materialize,
    "feature_training_set": feature_training_set,
    "feature_online_check": feature_online_check,
    "tune": tune,
    "train": train,
    "evaluate": evaluate,
    "serving_champion": serving_champion,
    "deploy": deploy,
    "check_drift": check_drift,
    "watched_model": watched_model,
    "extend_training_set": extend_training_set,
}
