"""The tuning spec rendered as a kubeflow.org/v1beta1 Experiment whose trials are PyTorchJobs running the trainer
(a pure builder; ``katib_run`` runs it).

The tuning spec arrives as a plain mapping in Katib's own field names (``TuningSpec.katib()``). Each trial's
trainer config is the base config with ``${trialParameters.<name>}`` placeholders at the (dotted) parameter keys;
numbers are substituted unquoted into the JSON, categorical values quoted. Katib's File collector reads the
trainer's ``metrics.jsonl`` (one JSON object per line) with a filter matching ``"name": number`` pairs; its JSON
format is not used because it accepts only string values.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from components._core.k8s_meta import canonical, deterministic_name, standard_metadata
from components.training import pytorchjob as pj
from components.training.launch import METRICS_FILE, LaunchSpec

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1beta1", "experiments", "Experiment"
EXPERIMENT_LABEL = "kfp-component-catalog.io/experiment"
TRIAL_PLURAL = "trials"
TRIAL_EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
MAX_NAME = 40  # Katib derives longer trial and pod names from the experiment's
# '"val_loss": 0.25' -> (name, value); Katib requires two top-level groups.
METRICS_FILTER = r'"([\w|.-]+)"\s*:\s*([+-]?\d*(?:\.\d+)?(?:[Ee][+-]?\d+)?)'
SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_REQUIRED = {"objective", "algorithm", "parameters"}
_OPTIONAL = {"parallelTrialCount", "maxTrialCount", "maxFailedTrialCount", "earlyStopping", "resumePolicy"}
_TYPES = {"double", "int", "discrete", "categorical"}


def _settings(raw: Any) -> list[dict[str, str]]:
    items = sorted(raw.items()) if isinstance(raw, Mapping) else [(s["name"], s["value"]) for s in raw or []]
    return [{"name": str(k), "value": str(v).lower() if isinstance(v, bool) else str(v)} for k, v in items]


def _algorithm(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"algorithmName": raw["algorithmName"]}
    if raw.get("algorithmSettings"):
        out["algorithmSettings"] = _settings(raw["algorithmSettings"])
    return out


def _parameter(raw: Mapping[str, Any]) -> dict[str, Any]:
    ptype = raw.get("parameterType")
    if ptype not in _TYPES:
        raise ValueError(f"parameter {raw.get('name')!r}: parameterType must be one of {sorted(_TYPES)}")
    space = {
        k: (str(v) if k != "list" else [str(x) for x in v])
        for k, v in (raw.get("feasibleSpace") or {}).items()
        if v is not None
    }
    if ptype in ("double", "int") and not {"min", "max"} <= set(space):
        raise ValueError(f"{ptype} parameter {raw['name']!r} needs feasibleSpace.min and max")
    if ptype in ("discrete", "categorical") and not space.get("list"):
        raise ValueError(f"{ptype} parameter {raw['name']!r} needs feasibleSpace.list")
    if ptype == "categorical" and any(re.search(r'["\\]', v) for v in space["list"]):
        raise ValueError(f"categorical parameter {raw['name']!r}: values may not contain quotes or backslashes")
    return {"feasibleSpace": space, "name": str(raw["name"]), "parameterType": ptype}


def _trial_name(param: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", param)


def _numeric(param: Mapping[str, Any]) -> bool:
    if param["parameterType"] in ("double", "int"):
        return True
    if param["parameterType"] == "discrete":
        try:
            [float(v) for v in param["feasibleSpace"]["list"]]
        except ValueError:
            return False
        return True
    return False


def _set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"trainer_config key {key!r} on the path of {dotted!r} is not a mapping")
    node[leaf] = value


def _trial_job(
    trial: LaunchSpec,
    params: list[dict[str, Any]],
    experiment: str,
    *,
    namespace: str,
    job_options: Mapping[str, Any],
) -> dict[str, Any]:
    config = copy.deepcopy(trial.trainer_config)
    for i, p in enumerate(params):
        _set_path(config, p["name"], f"__katib_{i}__")
    job = pj.build_pytorchjob(
        trial.model_copy(update={"trainer_config": config}),
        namespace=namespace,
        run_id="",
        task="",
        pod_labels={EXPERIMENT_LABEL: experiment},
        **job_options,
    )
    text = json.dumps(job)
    for i, p in enumerate(params):
        ref = f"${{trialParameters.{_trial_name(p['name'])}}}"
        # inside the --config argument the sentinel appears as \"__katib_i__\" (JSON in a JSON string)
        text = text.replace(f'\\"__katib_{i}__\\"', ref if _numeric(p) else f'\\"{ref}\\"')
    if "__katib_" in text:
        raise ValueError("a trial parameter placeholder was not substituted into the trainer command")
    job = json.loads(text)
    job["metadata"] = {"labels": job["metadata"]["labels"]}  # Katib sets the trial's name and namespace
    return job


def build_experiment(
    tuning: Mapping[str, Any],
    trial: LaunchSpec,
    *,
    namespace: str,
    run_id: str,
    task: str,
    name: str | None = None,
    resume_policy: str = "Never",
    job_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Experiment (sorted, deterministic). ``trial`` is the base launch of every trial; its ``output_uri``
    must be an absolute local path in the pod (the File collector reads ``<output_uri>/metrics.jsonl`` there).
    ``job_options`` are passed to ``build_pytorchjob`` (service account, cleanup, secret env, ...).
    ``name`` defaults to a deterministic one of at most 40 characters (trial and pod names are longer)."""
    keys = set(tuning)
    if not keys >= _REQUIRED or keys - _REQUIRED - _OPTIONAL:
        raise ValueError(
            f"tuning spec keys must include {sorted(_REQUIRED)} and may add {sorted(_OPTIONAL)}; got {sorted(keys)}"
        )
    if not posixpath.isabs(trial.output_uri) or "://" in trial.output_uri:
        raise ValueError(
            "trial.output_uri must be an absolute local path for Katib's File metrics collector, "
            f"got {trial.output_uri!r}"
        )
    exp_name = name or deterministic_name(run_id, task, "katib", max_len=MAX_NAME)
    params = [_parameter(p) for p in tuning["parameters"]]
    trial_names = [_trial_name(p["name"]) for p in params]
    if len(set(trial_names)) != len(trial_names):
        raise ValueError(f"parameter names collide once made trial parameter names: {trial_names}")
    objective = {k: v for k, v in dict(tuning["objective"]).items() if v is not None}
    spec: dict[str, Any] = {
        "algorithm": _algorithm(tuning["algorithm"]),
        "metricsCollectorSpec": {
            "collector": {"kind": "File"},
            "source": {
                "fileSystemPath": {
                    "format": "TEXT",
                    "kind": "File",
                    "path": posixpath.join(trial.output_uri, METRICS_FILE),
                },
                "filter": {"metricsFormat": [METRICS_FILTER]},
            },
        },
        "objective": objective,
        "parameters": params,
        "resumePolicy": tuning.get("resumePolicy", resume_policy),
        "trialTemplate": {
            "failureCondition": FAILURE,
            "primaryContainerName": pj.CONTAINER,
            "primaryPodLabels": {"training.kubeflow.org/job-role": "master"},
            "successCondition": SUCCESS,
            "trialParameters": [
                {"description": f"trainer config {p['name']}", "name": n, "reference": p["name"]}
                for p, n in zip(params, trial_names, strict=True)
            ],
            "trialSpec": _trial_job(trial, params, exp_name, namespace=namespace, job_options=job_options or {}),
        },
    }
    for key in ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount"):
        if tuning.get(key) is not None:
            spec[key] = int(tuning[key])
    if tuning.get("earlyStopping"):
        spec["earlyStopping"] = _algorithm(tuning["earlyStopping"])
    return canonical(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": standard_metadata(exp_name, namespace, run_id=run_id, task=task, component="tuning"),
            "spec": spec,
        }
    )
