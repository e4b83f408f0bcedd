"""The tuning step: one Katib-style spec, run by the Optuna engine (trials through the training launch backend)
or as a Katib Experiment (through the shared custom-resource launcher)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from components._core.artifacts import write_json
from components._core.backends import Backend
from components._core.config import StrictConfig
from components._core.k8s_meta import deterministic_name
from components.training.launch import TrainingBackend
from components.training.step import LaunchConfig, launch_spec, make_backend
from components.tuning.params import BestParams, merge_params
from components.tuning.run import StorageConfig, TuningStepConfig, run_step
from components.tuning.spec import TuningSpec

KATIB_TRIAL_OUTPUT = "/tmp/trial"


class TuneConfig(StrictConfig):
    """Engine and storage of the tuning step (the experiment itself is the ``TuningSpec``)."""

    engine: Literal["optuna", "katib"] = Field("optuna", description="optuna in the step, or a Katib Experiment")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Optuna study storage")
    poll_interval_s: float = Field(2.0, ge=0.01, le=600, description="seconds between polls of running trials")
    timeout_s: int = Field(6 * 3600, ge=60, le=14 * 86400, description="deadline for the whole experiment")

@dataclass(frozen=True)
class TuneOutcome:
    """Best trainer config (typed output for the training step), its score, and step metrics."""

    best_trainer_config: dict[str, Any]
    best: BestParams
    metrics: dict[str, float]


def tune_step(data_uri: str, *, output_dir: str, spec: TuningSpec | dict[str, Any] | str,
              trainer_config: dict[str, Any], launch: LaunchConfig | dict[str, Any] | str,
              tune: TuneConfig | dict[str, Any] | str, run_id: str, task: str,
              backend: TrainingBackend | None = None, katib_engine: Any = None) -> TuneOutcome:
    """Run the experiment; write reports under ``output_dir``; return the best trainer config."""
    tspec, cfg, lc = TuningSpec.parse(spec), TuneConfig.parse(tune), LaunchConfig.parse(launch)
    name = deterministic_name(run_id, task, prefix="tune")
    base = launch_spec(lc, name=name, trainer_config=trainer_config, data_uri=data_uri,
                       local_output=f"{output_dir}/trials")
    if cfg.engine == "katib":
        return _katib(tspec, base, lc, cfg, output_dir, run_id, task, katib_engine)
    step_cfg = TuningStepConfig(spec=tspec, storage=cfg.storage, poll_interval_s=cfg.poll_interval_s,
                                timeout_s=cfg.timeout_s, study_name=name, renderer="svg")
    backend = backend or make_backend(lc, run_id=run_id, task=task, log_dir=f"{output_dir}/launcher")
    result = run_step(step_cfg, base, backend, output_dir)
    best = result.best()
    assert best is not None  # run_step raises TuningFailed when no trial succeeded
    return TuneOutcome(best.apply(base.trainer_config), best, result.metrics())


def _katib(tspec: TuningSpec, base: Any, lc: LaunchConfig, cfg: TuneConfig, output_dir: str, run_id: str,
           task: str, engine: Any) -> TuneOutcome:
    from components.tuning.katib import KatibEngine, build_experiment

    if lc.backend != Backend.KUBEFLOW:
        raise ValueError("engine=katib runs trials as PyTorchJobs: set launch.backend to 'kubeflow'")
    namespace = lc.kubeflow.namespace
    # Katib's File metrics collector reads metrics.jsonl inside the trial pod: trials write to a pod-local folder.
    trial = base.model_copy(update={"output_uri": KATIB_TRIAL_OUTPUT})
    experiment = build_experiment(tspec.katib(), trial, namespace=namespace, run_id=run_id, task=task)
    write_json(experiment, f"{output_dir}/experiment.json")
    engine = engine or KatibEngine(namespace)
    best = engine.run(experiment, timeout_s=cfg.timeout_s, logs_uri=f"{output_dir}/logs.txt")
    metric = tspec.metric
    value = float(best["metrics"].get(metric, "nan"))
    params = {k: _number(v) for k, v in best["parameters"].items()}
    bp = BestParams(params=params, objective_metric_name=metric, direction=tspec.direction, value=value,
                    trial_name=best["trial"], study_name=experiment["metadata"]["name"])
    write_json(bp.model_dump(mode="json"), f"{output_dir}/best_params.json")
    return TuneOutcome(merge_params(base.trainer_config, params), bp, {"best_value": value})


def _number(text: str) -> int | float | str:
    """Katib reports parameter values as strings; give numbers back their type."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text
