"""The deploy step: roll a blessed model out as a canary on the configured serving backend and promote it or roll
it back automatically; and the champion lookup the evaluation gate compares with.

The smoke test and the comparison use the candidate's held-out rows (its own test split of the training set, the
rows the gate scored), with rows holding a null feature left out (serving refuses nulls as a client mistake).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from components._core.artifacts import read_json, read_table, shared_uri, write_json
from components._core.backends import Backend
from components._core.config import ConfigError
from components.evaluation.heldout import heldout_rows
from components.serving.canary.rollout import RolloutRecord, run_rollout
from components.serving.lineage import Lineage
from components.serving.target import DeployConfig, Served, make_serving
from components.training.launch import CARD_FILE


@dataclass(frozen=True)
class DeployOutcome:
    """How the rollout ended and where the service is."""

    record: RolloutRecord
    endpoint: str
    sample_rows: int
    serving: Served | None  # as the platform reports it after the rollout (local: the service's own copy)

    @property
    def promoted(self) -> bool:
        """The candidate serves all traffic now."""
        return self.record.promoted

    @property
    def serving_uri(self) -> str:
        """The model serving after the rollout ('' when nothing serves)."""
        return self.serving.model_uri if self.serving else ""

    def to_metadata(self) -> dict[str, Any]:
        """Metadata of the rollout record artifact."""
        serving = self.serving
        return {"decision": self.record.decision, "reasons": "; ".join(self.record.reasons),
                "candidate_version": self.record.candidate.version,
                "serving_version": serving.version if serving else "", "endpoint": self.endpoint,
                "backend": self.record.backend, "service": self.record.service, "sample_rows": self.sample_rows}


def serving_sample(training_set: pl.DataFrame, card: dict[str, Any]) -> tuple[list[dict[str, Any]], list[int]]:
    """Feature rows and labels of the candidate's held-out split, rows with a null feature left out."""
    held = heldout_rows(training_set, card)
    names = [f["name"] for f in card["features"]]
    frame = held.rows.select(names).with_columns(pl.Series("__y", held.y.astype(int)))
    complete = frame.drop_nulls()
    if complete.height == 0:
        raise ConfigError(f"invalid training set: every held-out row has a null among the features {names}")
    return complete.drop("__y").to_dicts(), complete["__y"].to_list()


class NotBlessed(RuntimeError):
    """The evaluation gate did not bless this model: it is never deployed."""


def deploy_step(model_path: str, training_set_path: str, *, blessing_path: str, record_uri: str,
                config: DeployConfig | dict[str, Any] | str, model_uri: str = "", run_id: str = "", task: str = "",
                **clients: Any) -> DeployOutcome:
    """Roll the model at ``model_path`` (the step's own path; cluster backends deploy the artifact's
    ``model_uri``) out as ``config`` says, if the gate's blessing at ``blessing_path`` blesses it; write the
    rollout record to ``record_uri``. A rolled-back rollout is an outcome, not an error; an unblessed model, a
    conflicting canary, a bad config or SIGTERM raise (after rolling back). ``run_id`` and ``task`` label what the
    rollout deploys (the InferenceService, the Vertex deployed model, the local state), so a retry is traceable."""
    cfg = DeployConfig.parse(config)
    blessing = read_json(blessing_path)
    if blessing.get("blessed") is not True:
        raise NotBlessed(f"the model at {model_path} is not blessed ({blessing.get('decision')}): "
                         f"{'; '.join(map(str, blessing.get('reasons', [])))[:500]}")
    card = read_json(f"{model_path.rstrip('/')}/{CARD_FILE}")
    lineage = Lineage.from_card(card, model_path)
    location = model_path if cfg.backend == Backend.LOCAL else shared_uri(model_path, model_uri,
                                                                          who=f"{cfg.backend} model servers")
    candidate = Served(location, lineage.version, lineage.to_dict())
    rows, labels = serving_sample(read_table(training_set_path), card)
    backend = make_serving(cfg, run_id=run_id, task=task, **clients)
    record = run_rollout(backend, candidate, cfg, rows, labels)
    write_json(record.to_dict(), record_uri)
    return DeployOutcome(record, backend.endpoint(), len(rows), backend.stable())
