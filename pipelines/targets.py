"""Compile targets and the platform-only configuration that lives behind them.

One pipeline definition serves every target. Kubeflow-only settings (Kubernetes security context, timeouts,
pull policy, passwords from Kubernetes Secrets) are applied only for ``Target.KUBEFLOW``; Vertex specs carry none
(on Vertex, steps read passwords from environment variables set by the job's service account tooling, e.g.
Secret Manager, never from parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kfp import dsl

RUN_AS_USER = 10001  # matches USER in images/*/Dockerfile
SECRETS_ROOT = "/var/run/secrets/kfp-catalog"


@dataclass(frozen=True)
class SecretMount:
    """A Kubernetes Secret a step may read passwords from: each key as an environment variable and the whole
    Secret as files under ``SECRETS_ROOT/<secret>/<key>``. Optional: a step whose config names no password runs
    without the Secret. Configs refer to these names (``{"env": VAR}`` or ``{"file": PATH}``), never to values."""

    secret: str
    env: dict[str, str] = field(default_factory=dict)  # Secret key -> environment variable

    @property
    def mount_path(self) -> str:
        """Where the Secret's keys appear as files."""
        return f"{SECRETS_ROOT}/{self.secret}"


# Secrets by purpose: the Secrets an administrator creates in the pipeline's namespace (see README).
SECRETS: dict[str, SecretMount] = {
    "features": SecretMount("kfp-catalog-feast", {"redis-password": "CATALOG_FEAST_REDIS_PASSWORD",
                                                  "registry-password": "CATALOG_FEAST_REGISTRY_PASSWORD"}),
    "tuning": SecretMount("kfp-catalog-tuning-db", {"password": "TUNING_DB_PASSWORD"}),
}


class Target(StrEnum):
    """Where a compiled spec runs. ``local`` compiles like Vertex (no kfp-kubernetes) for kfp.local."""

    KUBEFLOW = "kubeflow"
    VERTEX = "vertex"
    LOCAL = "local"


def configure(
    task: dsl.PipelineTask,
    target: Target,
    *,
    display_name: str,
    cache: bool = True,
    timeout_s: int = 3600,
    cpu: str = "1",
    memory: str = "2G",
    secrets: Sequence[str] = (),
) -> dsl.PipelineTask:
    """Apply portable settings (name, cache, resources) and, on Kubeflow, platform settings: security context,
    timeout, pull policy, and the ``SECRETS`` of the named purposes (as environment variables and files)."""
    task.set_display_name(display_name)
    task.set_caching_options(cache)
    task.set_cpu_limit(cpu)
    task.set_memory_limit(memory)
    if target == Target.KUBEFLOW:
        from kfp import kubernetes

        kubernetes.set_timeout(task, timeout_s)
        kubernetes.set_image_pull_policy(task, "IfNotPresent")
        kubernetes.set_security_context(task, run_as_user=RUN_AS_USER, run_as_group=RUN_AS_USER,
                                        run_as_non_root=True)
        for purpose in secrets:
            mount = SECRETS[purpose]
            kubernetes.use_secret_as_env(task, mount.secret, secret_key_to_env=dict(mount.env), optional=True)
            kubernetes.use_secret_as_volume(task, mount.secret, mount_path=mount.mount_path, optional=True)
    return task
