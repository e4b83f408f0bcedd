"""The feature family's steps, one per KFP wrapper: config parsing (errors name the field), the source override
and the copy before materialize. Each returns its result, whose ``to_metadata()`` (and ``metrics()``) the wrapper
copies onto its outputs.

An applied store travels between steps as a folder artifact. A step that changes it works on a copy (input
artifacts are read-only on every platform); with Redis and a SQL registry the folder only carries configuration
and the state lives in the servers.

Sources (:func:`apply_step`): ``source_name`` names the repository's file source that reads ``data`` (the
pipeline's dataset) instead of its own path; ``source_name=""`` keeps every source of the repository as it is
(e.g. a ``feast init`` repository's ``data/driver_stats.parquet``, resolved inside the applied copy) and ``data``
is not read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from components._core.artifacts import local_path
from components._core.config import ConfigError
from components.features.apply import ApplyConfig, ApplyResult, apply_repo
from components.features.config import FeatureStoreConfig
from components.features.materialize import MaterializeConfig, MaterializeResult, materialize
from components.features.online_check import OnlineCheckConfig, OnlineCheckResult, online_check
from components.features.training_set import TrainingSetConfig, TrainingSetResult, build_training_set


def apply_step(repo: str, data_path: str | None, output_dir: str, source_name: str = "events",
               store_config: str = "{}") -> ApplyResult:
    """Apply ``repo`` into ``output_dir``, data source ``source_name`` reading ``data_path`` (``""``: the
    repository's sources as they are)."""
    store = FeatureStoreConfig.parse(store_config)
    paths: dict[str, str] = {}
    if source_name:
        if not data_path:
            raise ConfigError(f"source_name={source_name!r} needs a data path; give data, or source_name='' to keep "
                             "the repository's own sources")
        paths[source_name] = data_path
    return apply_repo(repo, output_dir, ApplyConfig.parse({"store": store, "source_paths": paths}))


def materialize_step(store_dir: str, output_dir: str, report_path: str,
                     config: str = '{"mode": "incremental"}') -> MaterializeResult:
    """Copy the applied store at ``store_dir`` to ``output_dir`` and materialize there (the input stays as it
    was)."""
    cfg = MaterializeConfig.parse(config)
    src, dst = Path(local_path(store_dir)), Path(local_path(output_dir))
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return materialize(str(dst), report_path, cfg)


def training_set_step(store_dir: str, labels_path: str, output_path: str,
                      config: str = '{"feature_service": "training"}') -> TrainingSetResult:
    """Point-in-time features for every row of the label table at ``labels_path``, written to ``output_path``."""
    return build_training_set(store_dir, labels_path, output_path, TrainingSetConfig.parse(config))


def online_check_step(store_dir: str, entities_path: str, report_path: str,
                      config: str = "{}") -> OnlineCheckResult:
    """Online reads for a sample of the entities at ``entities_path``; report at ``report_path``."""
    return online_check(store_dir, entities_path, report_path, OnlineCheckConfig.parse(config))
