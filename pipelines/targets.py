"""Compile targets and the platform-only configuration that lives behind them.

One pipeline definition serves every target. Kubeflow-only settings (Kubernetes security context, timeouts,
pull policy, secrets from Kubernetes Secrets) are applied only for ``Target.KUBEFLOW``; Vertex specs carry none.
"""

from __future__ import annotations

from enum import StrEnum

from kfp import dsl

RUN_AS_USER = 10001  # matches USER in images/*/Dockerfile


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
) -> dsl.PipelineTask:
    """Apply portable settings (name, cache, resources) and, on Kubeflow, platform settings."""
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
    return task
