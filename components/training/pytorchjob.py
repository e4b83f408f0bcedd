"""Pure builder of the kubeflow.org/v1 PyTorchJob that runs the trainer (Master + Workers).

Config in, dict out (sorted keys, deterministic). Pods meet the restricted Pod Security Standard; secrets
reach the container only through ``secretKeyRef``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from components._core.k8s_meta import canonical, standard_metadata
from components._core.podsecurity import DEFAULT_UID, restrict_pod_spec
from components.training.launch import LaunchSpec

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
CONTAINER = "pytorch"  # the training operator finds the training container by this name
PORT_NAME, PORT = "pytorchjob-port", 23456
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
_SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|CREDENTIAL|PRIVATE_?KEY", re.I)

CleanPodPolicy = Literal["All", "Running", "None"]
RestartPolicy = Literal["ExitCode", "OnFailure", "Never", "Always"]


def trainer_command(spec: LaunchSpec) -> list[str]:
    """The container command: the image's Python with the trainer's arguments (``launch.trainer_args``)."""
    return ["python", *spec.trainer_args()]


def pod_selector(name: str) -> str:
    """Label selector of the job's pods (set by the training operator)."""
    return f"{JOB_NAME_LABEL}={name}"


def _env(spec: LaunchSpec, env: Mapping[str, str], secret_env: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    for key in env:
        if _SECRETISH.search(key):
            raise ValueError(f"env {key!r} looks like a secret: pass it as secret_env={{name: (secret, key)}}")
    overlap = set(env) & set(secret_env)
    if overlap:
        raise ValueError(f"env and secret_env both set {sorted(overlap)}")
    # the trainer picks NCCL on CUDA devices, gloo on CPU; CATALOG_IMAGE goes into the model card's lineage
    plain = {"PYTHONUNBUFFERED": "1", "CATALOG_IMAGE": spec.image, **env}
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    out += [
        {"name": k, "valueFrom": {"secretKeyRef": {"key": ref[1], "name": ref[0]}}}
        for k, ref in sorted(secret_env.items())
    ]
    return out


def _pod_template(
    spec: LaunchSpec,
    *,
    name: str,
    env: list[dict[str, Any]],
    service_account: str | None,
    node_selector: Mapping[str, str] | None,
    tolerations: Sequence[Mapping[str, Any]],
    image_pull_secrets: Sequence[str],
    run_as_user: int,
    pod_labels: Mapping[str, str],
) -> dict[str, Any]:
    amounts = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpus > 0:
        amounts["nvidia.com/gpu"] = str(spec.resources.gpus)
    container = {
        "command": trainer_command(spec),
        "env": env,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "name": CONTAINER,
        "ports": [{"containerPort": PORT, "name": PORT_NAME, "protocol": "TCP"}],
        "resources": {"limits": dict(amounts), "requests": dict(amounts)},
        "volumeMounts": [{"mountPath": "/dev/shm", "name": "dshm"}],
    }
    pod: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"emptyDir": {"medium": "Memory"}, "name": "dshm"}],
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["tolerations"] = [dict(t) for t in tolerations]
    if image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in image_pull_secrets]
    labels = {"app.kubernetes.io/instance": name, **pod_labels}
    return {
        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}, "labels": labels},
        "spec": restrict_pod_spec(pod, run_as_user=run_as_user),
    }


def build_pytorchjob(
    spec: LaunchSpec,
    *,
    namespace: str,
    run_id: str,
    task: str,
    service_account: str | None = None,
    clean_pod_policy: CleanPodPolicy = "All",
    ttl_seconds_after_finished: int | None = 86400,
    backoff_limit: int = 3,
    restart_policy: RestartPolicy = "ExitCode",
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, tuple[str, str]] | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    image_pull_secrets: Sequence[str] = (),
    run_as_user: int = DEFAULT_UID,
    pod_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The PyTorchJob for ``spec``: one Master and world_size-1 Workers, requests = limits, runPolicy with
    cleanup, TTL, ``activeDeadlineSeconds = spec.timeout_s`` and ``backoffLimit``.

    ``secret_env`` maps an env var to ``(secret name, key)``; plain ``env`` may not carry secret-like names.
    With ``restart_policy="ExitCode"`` exit codes 1-127 are permanent failures, 128-255 are retried.
    """
    if not spec.image:
        raise ValueError("LaunchSpec.image is required for a PyTorchJob")
    if backoff_limit < 0 or (ttl_seconds_after_finished is not None and ttl_seconds_after_finished < 0):
        raise ValueError("backoff_limit and ttl_seconds_after_finished must be >= 0")
    env_list = _env(spec, env or {}, secret_env or {})
    template = _pod_template(
        spec,
        name=spec.name,
        env=env_list,
        service_account=service_account,
        node_selector=node_selector,
        tolerations=tolerations,
        image_pull_secrets=image_pull_secrets,
        run_as_user=run_as_user,
        pod_labels=pod_labels or {},
    )
    replicas = {"Master": {"replicas": 1, "restartPolicy": restart_policy, "template": template}}
    if spec.world_size > 1:
        replicas["Worker"] = {
            "replicas": spec.world_size - 1,
            "restartPolicy": restart_policy,
            "template": template,
        }
    run_policy: dict[str, Any] = {
        "activeDeadlineSeconds": spec.timeout_s,
        "backoffLimit": backoff_limit,
        "cleanPodPolicy": clean_pod_policy,
    }
    if ttl_seconds_after_finished is not None:
        run_policy["ttlSecondsAfterFinished"] = ttl_seconds_after_finished
    return canonical(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": standard_metadata(spec.name, namespace, run_id=run_id, task=task, component="training"),
            "spec": {"pytorchReplicaSpecs": replicas, "runPolicy": run_policy},
        }
    )
