"""Kubeflow backend: the trainer as a PyTorchJob, through the shared custom-resource launcher.

Each attempt is one PyTorchJob labelled with its step and attempt number, so a retried step finds them all: it
adopts a running or succeeded one and otherwise creates the next attempt (``components.training.launch.start``).
"""

from __future__ import annotations

import functools
from typing import Any, Self

from components._core.jobs import RunningJob
from components._core.k8s import (
    Cleanup,
    CustomResourceJob,
    CustomResourceLauncher,
    api_policy_for,
    attempt_of,
    require_same_spec,
    transient_api_error,
    with_attempt_labels,
)
from components._core.k8s_meta import STEP_LABEL
from components._core.waiting import Clock
from components.training import pytorchjob as pj
from components.training.launch import KubeflowOptions, LaunchConfig, LaunchSpec, TrainingBackend


class KubeflowTrainingBackend(TrainingBackend):
    """Runs the trainer as a PyTorchJob. Kubernetes clients are injected, or built on first use (in-cluster
    config, else kubeconfig)."""

    def __init__(self, options: KubeflowOptions | dict[str, Any] | str | None = None, *, run_id: str = "",
                 task: str = "", api: Any = None, core_api: Any = None, clock: Clock | None = None):
        self.options = KubeflowOptions.parse(options)
        self.run_id, self.task = run_id, task
        self._api, self._core_api, self._clock = api, core_api, clock

    @classmethod
    def from_config(cls, cfg: LaunchConfig, *, run_id: str, task: str, log_dir: str | None = None,
                    clock: Clock | None = None) -> Self:
        return cls(cfg.kubeflow, run_id=run_id, task=task, clock=clock)

    @functools.cached_property
    def launcher(self) -> CustomResourceLauncher:
        """The shared launcher bound to PyTorchJobs in the configured namespace (clients made on first use)."""
        return CustomResourceLauncher(self._api, pj.GROUP, pj.VERSION, pj.PLURAL, self.options.namespace,
                                      core_api=self._core_api, clock=self._clock,
                                      retry=api_policy_for(self.options.wait))

    def manifest(self, spec: LaunchSpec) -> dict[str, Any]:
        """The PyTorchJob this backend submits for ``spec`` (pure), labelled with its step and attempt."""
        o = self.options
        job = pj.build_pytorchjob(
            spec, namespace=o.namespace, run_id=self.run_id, task=self.task, service_account=o.service_account,
            clean_pod_policy=o.clean_pod_policy, ttl_seconds_after_finished=o.ttl_seconds_after_finished,
            backoff_limit=o.backoff_limit, restart_policy=o.restart_policy, secret_env=o.secret_env,
            node_selector=o.node_selector, image_pull_secrets=o.image_pull_secrets, run_as_user=o.run_as_user,
        )
        return with_attempt_labels(job, spec.step_name, spec.attempt)

    def job(self, name: str, attempt: int, timeout_s: float) -> CustomResourceJob:
        """Handle on the PyTorchJob ``name``, waited on as the options say."""
        o = self.options
        return CustomResourceJob(
            self.launcher, name, attempt=attempt, policy=o.wait.policy(timeout_s, transient_api_error),
            label_selector=pj.pod_selector(name),
            cleanup=Cleanup(on_success=o.delete_on_success, on_failure=o.delete_on_failure),
        )

    def attempts(self, spec: LaunchSpec) -> list[RunningJob]:
        jobs: list[RunningJob] = []
        for obj in self.launcher.list(f"{STEP_LABEL}={spec.step_name}"):
            attempt = attempt_of(obj)
            mine = self.manifest(spec.for_attempt(attempt, self.max_name_len))
            require_same_spec(obj, mine, self.launcher.ref(obj["metadata"]["name"]))
            jobs.append(self.job(obj["metadata"]["name"], attempt, spec.timeout_s))
        return jobs

    def create(self, spec: LaunchSpec) -> CustomResourceJob:
        obj = self.launcher.apply(self.manifest(spec))
        return self.job(obj["metadata"]["name"], spec.attempt, spec.timeout_s)
