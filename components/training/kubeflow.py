"""Kubeflow backend: the trainer as a PyTorchJob, through the shared custom-resource launcher."""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import Field

from components._core.backends import Backend, register
from components._core.config import StrictConfig
from components._core.k8s import (
    Cleanup,
    CustomResourceLauncher,
    DeadlineExceeded,
    ResourceFailed,
    ResourceGone,
    on_sigterm,
    terminal_condition,
)
from components._core.waiting import Clock
from components.training import pytorchjob as pj
from components.training.launch import (
    JobPhase,
    JobStatus,
    LaunchError,
    LaunchSpec,
    RunningJob,
    TrainingBackend,
)


class KubeflowOptions(StrictConfig):
    """Where and how PyTorchJobs run."""

    namespace: str = Field(
        "kubeflow",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="namespace of the PyTorchJob",
    )
    run_id: str = Field("", description="pipeline run id, recorded as an annotation")
    task: str = Field("", description="pipeline task name, recorded as an annotation")
    service_account: str | None = Field(None, description="service account of the training pods")
    clean_pod_policy: Literal["All", "Running", "None"] = Field("All", description="pods to delete when done")
    ttl_seconds_after_finished: int | None = Field(86400, ge=0, description="delete the job this long after")
    backoff_limit: int = Field(3, ge=0, le=100, description="pod restarts before the job fails")
    restart_policy: Literal["ExitCode", "OnFailure", "Never", "Always"] = Field("ExitCode")
    secret_env: dict[str, tuple[str, str]] = Field(default_factory=dict, description="env var -> (Secret name, key)")
    node_selector: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[str] = Field(default_factory=list)
    run_as_user: int = Field(10001, ge=1, description="non-root uid (the catalog images use 10001)")
    poll_interval_s: float = Field(10.0, gt=0, le=600, description="seconds between status reads")
    deadline_grace_s: int = Field(300, ge=0, le=3600, description="wait this long past the job's own deadline")
    delete_on_success: bool = Field(False, description="delete the job when it succeeds")
    delete_on_failure: bool = Field(False, description="delete the job when it fails (else kept for the TTL)")


class PyTorchJobRun(RunningJob):
    """Handle on one PyTorchJob."""

    def __init__(self, launcher: CustomResourceLauncher, name: str, *, timeout_s: float, cleanup: Cleanup):
        self.name = name
        self._launcher, self._timeout_s, self._cleanup = launcher, timeout_s, cleanup

    def status(self) -> JobStatus:
        obj = self._launcher.get(self.name)
        if obj is None:
            return JobStatus(JobPhase.CANCELLED, "the PyTorchJob no longer exists")
        status = obj.get("status") or {}
        details = {
            "conditions": status.get("conditions", []),
            "replicaStatuses": status.get("replicaStatuses", {}),
        }
        outcome, cond = terminal_condition(obj)
        if cond is not None:
            phase = JobPhase.SUCCEEDED if outcome == "succeeded" else JobPhase.FAILED
            return JobStatus(phase, str(cond.get("message", "")), details)
        running = any(c.get("type") == "Running" and c.get("status") == "True" for c in details["conditions"])
        return JobStatus(JobPhase.RUNNING if running else JobPhase.PENDING, "", details)

    def cancel(self) -> None:
        self._launcher.delete(self.name)

    def logs(self) -> str:
        return self._launcher.collect_logs(self.name, pj.pod_selector(self.name))

    def wait(self, *, logs_uri: str | None = None) -> JobStatus:
        """Block until the job ends; SIGTERM or the deadline delete it. Logs and events go to ``logs_uri``.
        Raises ``LaunchError`` when the job fails, vanishes or overruns."""
        where = f"{self._launcher.namespace}/{self.name}"
        try:
            obj = self._launcher.watch(
                self.name,
                timeout_s=self._timeout_s,
                label_selector=pj.pod_selector(self.name),
                logs_uri=logs_uri,
                cleanup=self._cleanup,
            )
        except ResourceFailed as err:
            raise LaunchError(f"PyTorchJob {where} failed: {err}") from err
        except ResourceGone as err:
            raise LaunchError(f"PyTorchJob {where} was deleted before it finished") from err
        except DeadlineExceeded as err:
            raise LaunchError(
                f"PyTorchJob {where} did not finish in {self._timeout_s:.0f}s and was deleted"
                + (f"; logs: {logs_uri}" if logs_uri else "")
            ) from err
        _, cond = terminal_condition(obj)
        return JobStatus(
            JobPhase.SUCCEEDED,
            str((cond or {}).get("message", "")),
            {"conditions": (obj.get("status") or {}).get("conditions", [])},
        )


@register("training", Backend.KUBEFLOW)
class KubeflowTrainingBackend(TrainingBackend):
    """Runs the trainer as a PyTorchJob. Kubernetes clients are injected, or built on first use (in-cluster
    config, else kubeconfig)."""

    def __init__(
        self,
        options: KubeflowOptions | dict[str, Any] | str | None = None,
        *,
        api: Any = None,
        core_api: Any = None,
        clock: Clock | None = None,
    ):
        self.options = KubeflowOptions.parse(options)
        self._api, self._core_api, self._clock = api, core_api, clock

    @functools.cached_property
    def _launcher(self) -> CustomResourceLauncher:
        return CustomResourceLauncher(
            self._api, pj.GROUP, pj.VERSION, pj.PLURAL, self.options.namespace, core_api=self._core_api,
            clock=self._clock, interval_s=self.options.poll_interval_s,
        )

    def launcher(self) -> CustomResourceLauncher:
        """The shared launcher bound to PyTorchJobs in the configured namespace (clients made on first use)."""
        return self._launcher

    def manifest(self, spec: LaunchSpec) -> dict[str, Any]:
        """The PyTorchJob this backend submits for ``spec`` (pure)."""
        o = self.options
        return pj.build_pytorchjob(
            spec,
            namespace=o.namespace,
            run_id=o.run_id,
            task=o.task,
            service_account=o.service_account,
            clean_pod_policy=o.clean_pod_policy,
            ttl_seconds_after_finished=o.ttl_seconds_after_finished,
            backoff_limit=o.backoff_limit,
            restart_policy=o.restart_policy,
            secret_env=o.secret_env,
            node_selector=o.node_selector,
            image_pull_secrets=o.image_pull_secrets,
            run_as_user=o.run_as_user,
        )

    def start(self, spec: LaunchSpec) -> PyTorchJobRun:
        launcher = self.launcher()
        obj = launcher.apply(self.manifest(spec))
        cleanup = Cleanup(on_success=self.options.delete_on_success, on_failure=self.options.delete_on_failure)
        return PyTorchJobRun(
            launcher,
            obj["metadata"]["name"],
            timeout_s=spec.timeout_s + self.options.deadline_grace_s,
            cleanup=cleanup,
        )

    def run(self, spec: LaunchSpec, *, logs_uri: str | None = None) -> JobStatus:
        """Start (or adopt) and wait: the whole step. Raises ``LaunchError`` when the job does not succeed."""
        launcher = self.launcher()
        with on_sigterm(lambda: launcher.delete(spec.name)):  # covers the create, before wait takes over
            job = self.start(spec)
        return job.wait(logs_uri=logs_uri)
