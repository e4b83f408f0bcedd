"""The tuning step: one Katib-style spec, run by the Optuna engine (trials as jobs on the training launch backend)
or as a Katib Experiment (through the shared custom-resource launcher); reports, the trials table and the history
page land in the step's artifacts, and the best trainer config is returned for the training step."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components._core.artifacts import filesystem, local_path, write_json, write_text
from components._core.backends import Backend
from components._core.config import ConfigError
from components._core.jobs import JobPhase
from components._core.k8s_meta import deterministic_name
from components._core.secrets import redact
from components._core.signals import on_sigterm
from components._core.waiting import Clock
from components.training.config import TrainerConfig
from components.training.launch import (
    LaunchConfig,
    LaunchError,
    LaunchSpec,
    launch_spec,
    make_backend,
    output_file,
)
from components.tuning.config import TuneConfig
from components.tuning.engine import run_tuning
from components.tuning.params import BestParams, ParamsError, merge_params
from components.tuning.report import write_reports
from components.tuning.results import TuningResult, tuning_result
from components.tuning.spec import TuningSpec
from components.tuning.storage import open_storage

KATIB_TRIAL_OUTPUT = "/tmp/trial"  # Katib's File collector reads metrics.jsonl inside the trial pod
BEST_TRAINER_CONFIG = "best_trainer_config.json"
LOGS = "logs.txt"


class TuningFailed(RuntimeError):
    """The experiment ended without success (failed-trial limit, deadline, or no trial succeeded); the reports
    were written before raising."""

    def __init__(self, message: str, result: TuningResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class TuneOutcome:
    """Best trainer config (typed output for the training step), its score, and the run's result."""

    best_trainer_config: dict[str, Any]
    best: BestParams
    result: TuningResult

    def metric_values(self) -> dict[str, float]:
        """Scalar metrics for the KFP ``Metrics`` artifact."""
        return self.result.metrics()

    def run_metadata(self) -> dict[str, Any]:
        """Metadata of the run artifact."""
        return {"best_value": self.best.value, "best_trial": self.best.trial_name, "study": self.result.study_name,
                "stop_reason": self.result.stop_reason.value, "trials": self.result.trials.height}


def tune_step(data_path: str, *, output_dir: str, spec: TuningSpec | Mapping[str, Any] | str,
              trainer_config: Mapping[str, Any] | str, launch: LaunchConfig | Mapping[str, Any] | str,
              tune: TuneConfig | Mapping[str, Any] | str, run_id: str, task: str, data_uri: str = "",
              trials_uri: str | None = None, history_uri: str | None = None, clock: Clock | None = None,
              env: Mapping[str, str] | None = None) -> TuneOutcome:
    """Run the experiment on the training set at ``data_path`` (the step's own path; cluster trials read the
    artifact's ``data_uri``); write reports, logs (with the attempt history) and the best trainer config under
    ``output_dir``, and copies of the trials table and history page to ``trials_uri`` / ``history_uri``.
    Raises ``TuningFailed`` after writing them when the experiment did not succeed."""
    tspec, cfg, lc = TuningSpec.parse(spec), TuneConfig.parse(tune), LaunchConfig.parse(launch)
    trainer = TrainerConfig.parse(trainer_config).model_dump(mode="json", exclude_none=True)
    check_search_space(tspec, trainer)
    name = deterministic_name(run_id, task, prefix="tune")
    # trials write under <base output>/trials/<trial>: <output_dir>/trials/... locally, <output_root>/<name>/trials/...
    # on a cluster
    base = launch_spec(lc, name=name, trainer_config=trainer, data_path=data_path, data_uri=data_uri,
                       local_output=output_dir)
    if cfg.engine == "katib":
        result, detail = _katib(tspec, base, lc, cfg, output_dir, run_id, task, clock)
    else:
        result, detail = _optuna(tspec, base, lc, cfg, output_dir, run_id, task, clock, env), ""
    files = write_reports(result, output_dir)
    for src, dst in ((files["trials_parquet"], trials_uri), (files["history"], history_uri)):
        if dst:
            shutil.copyfile(local_path(src), local_path(dst))
    best = result.best()
    if not result.succeeded or best is None:
        raise TuningFailed(f"tuning failed: {result.stop_reason.value}; trials {result.counts()}; "
                           f"table {files['trials_csv']}" + (f"; {detail}" if detail else ""), result)
    best_config = best.apply(base.trainer_config)
    write_json(best_config, output_file(output_dir, BEST_TRAINER_CONFIG))
    return TuneOutcome(best_config, best, result)


def check_search_space(spec: TuningSpec, trainer_config: Mapping[str, Any]) -> None:
    """Every parameter names a trainer config field and its space holds only values the trainer accepts: each
    parameter's bounds (double, int) or choices (categorical, discrete), merged into ``trainer_config``, must parse
    as a ``TrainerConfig``. A bad space fails here, naming the parameter, instead of in every trial's job."""
    for p in spec.parameters:
        fs = p.feasible_space
        values: list[Any] = p.choices() if fs.values is not None else [fs.low, fs.high]
        if p.parameter_type == "int":
            values = [int(v) for v in values]
        for value in values:
            try:
                TrainerConfig.parse(merge_params(trainer_config, {p.name: value}))
            except (ConfigError, ParamsError) as err:
                raise ConfigError(f"invalid TuningSpec.parameters: {p.name} = {value!r} is not a value the trainer "
                                  f"accepts:\n{err}") from None


def _optuna(tspec: TuningSpec, base: LaunchSpec, lc: LaunchConfig, cfg: TuneConfig, output_dir: str, run_id: str,
            task: str, clock: Clock | None, env: Mapping[str, str] | None) -> TuningResult:
    url = cfg.storage.resolve(output_dir, env)
    storage = open_storage(url)
    backend = make_backend(lc, run_id=run_id, task=task, log_dir=output_file(output_dir, "launcher"), clock=clock)
    try:
        with on_sigterm():  # SIGTERM raises Terminated; the engine cancels the running trials
            result, history = run_tuning(tspec, base, backend, storage=storage, storage_label=redact(url),
                                         study_name=cfg.study_name or None, clock=clock, timeout_s=cfg.timeout_s)
    finally:
        storage.engine.dispose()  # close pooled database connections
    write_text("".join(f"== {line}\n" for line in history) + _trial_lines(result), output_file(output_dir, LOGS))
    return result


def _trial_lines(result: TuningResult) -> str:
    rows = result.trials.select("name", "state", "value", "message").rows()
    return "".join(f"trial {n}: {s} value={v} {m}\n" for n, s, v, m in rows)


def _katib(tspec: TuningSpec, base: LaunchSpec, lc: LaunchConfig, cfg: TuneConfig, output_dir: str, run_id: str,
           task: str, clock: Clock | None) -> tuple[TuningResult, str]:
    """The Experiment's result, and how it ended (also appended to the logs: Katib's own words on a failure)."""
    from components.tuning.katib import MAX_NAME, build_experiment
    from components.tuning.katib_run import KatibEngine, frozen_trials, stop_reason

    if lc.backend != Backend.KUBEFLOW:
        raise ConfigError("invalid TuneConfig.engine: katib runs trials as PyTorchJobs; set launch.backend to "
                          "'kubeflow'")
    trial = base.model_copy(update={"output_uri": KATIB_TRIAL_OUTPUT})

    def manifest_for(exp_name: str) -> dict[str, Any]:
        return build_experiment(tspec.katib(), trial, namespace=lc.kubeflow.namespace, run_id=run_id, task=task,
                                name=exp_name)

    step = deterministic_name(run_id, task, "katib", max_len=MAX_NAME)
    ran = KatibEngine(lc.kubeflow, clock=clock).run(step, manifest_for, timeout_s=cfg.timeout_s,
                                                    logs_uri=output_file(output_dir, LOGS))
    write_json(manifest_for(ran.launch.job.name), output_file(output_dir, "experiment.json"))
    ended = f"Katib Experiment {ran.launch.job.name} {ran.status.phase.value.lower()}" + (
        f": {ran.status.message}" if ran.status.message else "")
    logs = output_file(output_dir, LOGS)
    fs, path = filesystem(logs)
    write_text((fs.cat_file(path).decode() if fs.exists(path) else "") + f"== {ended}\n", logs)
    if ran.status.phase not in (JobPhase.SUCCEEDED, JobPhase.FAILED):
        raise LaunchError(ended)
    result = tuning_result(tspec, study_name=ran.launch.job.name, storage="katib",
                           stop_reason=stop_reason(ran.experiment), trials=frozen_trials(ran.trials, tspec))
    return result, ended

