"""The one launcher for Kubernetes custom resources (PyTorchJob, Katib Experiment, InferenceService).

``CustomResourceLauncher`` creates-or-adopts under a deterministic name (a different spec under the same name is a
``ResourceConflict``), lists a step's attempts by label, patches, deletes and collects pod logs and events; API
calls retry transient errors (429, 5xx, connection errors) with bounded backoff. ``CustomResourceJob`` is one
such object as a ``RunningJob`` (status from its conditions; cancel = delete; cleanup on success / failure as its
``Cleanup`` says), so it is waited on through the one wait path (``components._core.jobs``), and ``launch`` starts
or adopts a step's attempt. The kubernetes clients are passed in: ``api`` is ``CustomObjectsApi``-compatible,
``core_api`` ``CoreV1Api``-compatible, so tests use a fake with real semantics.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from components._core.jobs import (
    JobPhase,
    JobStatus,
    Launch,
    RunningJob,
    WaitPolicy,
    attempt_name,
    call_with_retry,
    start_or_adopt,
)
from components._core.k8s_logs import collect
from components._core.k8s_meta import (
    ATTEMPT_LABEL,
    SPEC_HASH_ANNOTATION,
    STEP_LABEL,
    canonical,
    spec_hash,
)
from components._core.waiting import Clock, wait_for

log = logging.getLogger(__name__)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


class ResourceConflict(RuntimeError):
    """An object with the same name exists but was created from a different spec."""


@dataclass(frozen=True)
class Cleanup:
    """Whether to delete the resource once it succeeded or failed (SIGTERM and the deadline always delete)."""

    on_success: bool = False
    on_failure: bool = False


def transient_api_error(err: BaseException) -> bool:
    """429 and 5xx answers of the API server, and connection errors: worth retrying."""
    if isinstance(err, ApiException):
        return err.status in TRANSIENT_STATUS
    import urllib3.exceptions

    return isinstance(err, ConnectionError | TimeoutError | urllib3.exceptions.HTTPError)


def api_policy(poll_interval_s: float = 5.0, deadline_s: float = 3600.0, *, backoff_max_s: float = 60.0,
               transient_budget_s: float = 900.0) -> WaitPolicy:
    """A ``WaitPolicy`` for Kubernetes objects: transient API errors retried with backoff."""
    return WaitPolicy(poll_interval_s=poll_interval_s, deadline_s=deadline_s, transient=transient_api_error,
                      backoff_max_s=backoff_max_s, transient_budget_s=transient_budget_s)


def api_policy_for(wait: Any) -> WaitPolicy:
    """``api_policy`` from a backend's wait options (``poll_interval_s``, ``backoff_max_s``,
    ``transient_budget_s``): how the shared launcher retries that backend's API calls."""
    return api_policy(wait.poll_interval_s, backoff_max_s=wait.backoff_max_s,
                      transient_budget_s=wait.transient_budget_s)


def default_clients() -> tuple[Any, Any]:
    """``(CustomObjectsApi, CoreV1Api)`` from in-cluster config (a step's pod), else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi(), client.CoreV1Api()


def terminal_condition(
    obj: dict[str, Any], succeeded: Iterable[str] = ("Succeeded",), failed: Iterable[str] = ("Failed",)
) -> tuple[str | None, dict[str, Any] | None]:
    """``("succeeded" | "failed", condition)`` for the newest True condition of a terminal type, else ``(None,
    None)``. Newest means latest ``lastTransitionTime``, ties broken by list order; intermediate conditions
    (Created, Running) are never required, since a fast job may skip them."""
    ok, bad = set(succeeded), set(failed)
    conditions = (obj.get("status") or {}).get("conditions") or []
    candidates = [
        (str(c.get("lastTransitionTime") or ""), i, c)
        for i, c in enumerate(conditions)
        if c.get("status") == "True" and c.get("type") in ok | bad
    ]
    if not candidates:
        return None, None
    _, _, newest = max(candidates, key=lambda t: (t[0], t[1]))
    return ("failed" if newest["type"] in bad else "succeeded"), newest


def generation_observed(obj: dict[str, Any]) -> bool:
    """The controller has seen the latest spec: ``status.observedGeneration >= metadata.generation``."""
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and observed >= (obj.get("metadata") or {}).get("generation", 0)


def with_attempt_labels(manifest: dict[str, Any], step: str, attempt: int) -> dict[str, Any]:
    """A copy of ``manifest`` labelled as attempt ``attempt`` of ``step`` (how a retried step finds it)."""
    out = copy.deepcopy(manifest)
    labels = out.setdefault("metadata", {}).setdefault("labels", {})
    labels.update({STEP_LABEL: step, ATTEMPT_LABEL: str(attempt)})
    return canonical(out)


def require_same_spec(obj: dict[str, Any], manifest: dict[str, Any], ref: str) -> None:
    """Raise ``ResourceConflict`` unless ``obj`` was made from ``manifest``'s spec (by its spec-hash annotation):
    a step never adopts an object it did not make."""
    theirs = ((obj.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
    ours = spec_hash(manifest)
    if theirs != ours:
        raise ResourceConflict(f"{ref} exists with spec hash {theirs!r}, not {ours!r}: it was made from a "
                               "different spec; delete it or use another run/task name")


def attempt_of(obj: dict[str, Any]) -> int:
    """The attempt number an object is labelled with (1 when unlabelled)."""
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(ATTEMPT_LABEL, "1")
    return int(value) if str(value).isdigit() else 1


class CustomResourceLauncher:
    """Create-or-adopt, get, list, patch, delete and collect logs for one kind of namespaced custom resource."""

    def __init__(
        self,
        api: Any,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        core_api: Any = None,
        clock: Clock | None = None,
        retry: WaitPolicy | None = None,
    ):
        if api is None:  # not injected: the step's own cluster (in-cluster config, else kubeconfig)
            api, default_core = default_clients()
            core_api = core_api or default_core
        self.api, self.core_api = api, core_api
        self.group, self.version, self.plural, self.namespace = group, version, plural, namespace
        self.clock = clock or Clock()
        self.retry = retry or api_policy()

    def _args(self) -> tuple[str, str, str, str]:
        return self.group, self.version, self.namespace, self.plural

    def ref(self, name: str) -> str:
        """``plural.group/version namespace/name``, for messages."""
        return f"{self.plural}.{self.group}/{self.version} {self.namespace}/{name}"

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_with_retry(fn, self.retry, what=what, clock=self.clock)

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (one read: transient errors are the caller's)."""
        try:
            return dict(self.api.get_namespaced_custom_object(*self._args(), name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def list(self, label_selector: str) -> list[dict[str, Any]]:
        """Objects matching ``label_selector`` (transient errors retried)."""
        found = self._call(f"list {self.plural}", lambda: self.api.list_namespaced_custom_object(
            *self._args(), label_selector=label_selector))
        return [dict(o) for o in found.get("items", [])]

    def apply(self, manifest: dict[str, Any], *, deletion_timeout_s: float = 300.0) -> dict[str, Any]:
        """Create the object, or adopt the existing one of the same name if its spec hash matches.

        An object still being deleted is waited out, then created anew. A different spec under the same name
        raises ``ResourceConflict`` rather than touching an object this step did not make.
        """
        body = canonical(copy.deepcopy(manifest))
        if body.get("apiVersion") != f"{self.group}/{self.version}":
            raise ValueError(f"manifest apiVersion {body.get('apiVersion')!r} is not {self.group}/{self.version}")
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ValueError("manifest has no metadata.name")
        if meta.setdefault("namespace", self.namespace) != self.namespace:
            raise ValueError(f"manifest namespace {meta['namespace']!r} is not {self.namespace!r}")
        digest = spec_hash(body)
        meta.setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = digest
        for _ in range(3):
            try:
                created = dict(self._call(f"create {self.ref(name)}", lambda: self.api.create_namespaced_custom_object(
                    *self._args(), body)))
                log.info("created %s", self.ref(name))
                return created
            except ApiException as err:
                if err.status != 409:
                    raise
            existing = self._call(f"get {self.ref(name)}", lambda: self.get(name))
            if existing is None:  # deleted between our create and get: try again
                continue
            if existing.get("metadata", {}).get("deletionTimestamp"):
                log.info("%s is being deleted; waiting before creating it again", self.ref(name))
                wait_for(lambda: self.get(name), lambda o: o is None, timeout_s=deletion_timeout_s,
                         interval_s=self.retry.poll_interval_s, what=f"deletion of {self.ref(name)}",
                         clock=self.clock)
                continue
            require_same_spec(existing, body, self.ref(name))
            log.info("adopted existing %s (same spec hash)", self.ref(name))
            return existing
        raise ResourceConflict(f"could not create or adopt {self.ref(name)}: it keeps appearing and vanishing")

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of ``name`` (e.g. an InferenceService's ``canaryTrafficPercent``)."""
        return dict(self._call(f"patch {self.ref(name)}", lambda: self.api.patch_namespaced_custom_object(
            *self._args(), name, body)))

    def delete(self, name: str) -> bool:
        """Delete with foreground propagation (pods go first); False if it was already gone."""
        def call() -> bool:
            try:
                self.api.delete_namespaced_custom_object(*self._args(), name, propagation_policy="Foreground")
            except ApiException as err:
                if err.status == 404:
                    return False
                raise
            return True

        deleted = bool(self._call(f"delete {self.ref(name)}", call))
        if deleted:
            log.info("deleted %s", self.ref(name))
        return deleted

    def collect_logs(self, name: str, label_selector: str | None = None, *, tail_lines: int | None = None) -> str:
        """Logs of every container of the pods matching ``label_selector`` (previous run too when a container
        restarted), then the events of the object and of those pods. Errors are reported inline."""
        try:
            return collect(self.core_api, self.namespace, name, label_selector, tail_lines=tail_lines)
        except Exception as err:  # a log-collection error must never hide the step's own outcome
            log.warning("could not collect logs of %s: %s", self.ref(name), err)
            return f"(log collection of {self.ref(name)} failed: {type(err).__name__}: {err})\n"


class CustomResourceJob(RunningJob):
    """One custom resource as a ``RunningJob``: its phase read from its conditions.

    ``succeeded`` / ``failed`` name the terminal condition types; success also needs ``settled`` (e.g.
    ``generation_observed``, so a condition left over from before a patch does not count). A ``Running``
    condition means running, anything else before the end pending. An object being deleted, or gone, is
    cancelled."""

    def __init__(
        self,
        launcher: CustomResourceLauncher,
        name: str,
        *,
        policy: WaitPolicy,
        attempt: int = 1,
        succeeded: Iterable[str] = ("Succeeded",),
        failed: Iterable[str] = ("Failed",),
        settled: Callable[[dict[str, Any]], bool] | None = None,
        label_selector: str | None = None,
        cleanup: Cleanup | None = None,
    ):
        self.launcher, self.name, self.attempt = launcher, name, attempt
        self._policy, self._ok, self._bad = policy, tuple(succeeded), tuple(failed)
        self._settled, self._selector, self._cleanup = settled, label_selector, cleanup or Cleanup()
        self.last: dict[str, Any] | None = None

    @property
    def policy(self) -> WaitPolicy:
        return self._policy

    def status(self) -> JobStatus:
        obj = self.launcher.get(self.name)
        if obj is None:
            return JobStatus(JobPhase.CANCELLED, f"{self.launcher.ref(self.name)} no longer exists")
        self.last = obj
        status = obj.get("status") or {}
        details = {"conditions": status.get("conditions", []), "object": obj}
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return JobStatus(JobPhase.CANCELLED, f"{self.launcher.ref(self.name)} is being deleted", details)
        outcome, cond = terminal_condition(obj, self._ok, self._bad)
        if cond is not None and (outcome == "failed" or self._settled is None or self._settled(obj)):
            phase = JobPhase.SUCCEEDED if outcome == "succeeded" else JobPhase.FAILED
            why = ": ".join(str(cond.get(k, "")) for k in ("reason", "message") if cond.get(k))
            return JobStatus(phase, why, details)
        running = any(c.get("type") == "Running" and c.get("status") == "True" for c in details["conditions"])
        said = [c for c in details["conditions"] if c.get("message")]
        latest = ": ".join(str(said[-1].get(k)) for k in ("reason", "message") if said[-1].get(k)) if said else ""
        return JobStatus(JobPhase.RUNNING if running else JobPhase.PENDING, latest, details)

    def cancel(self) -> None:
        self.launcher.delete(self.name)

    def release(self, status: JobStatus) -> None:
        if (status.phase is JobPhase.SUCCEEDED and self._cleanup.on_success) or (
                status.phase is JobPhase.FAILED and self._cleanup.on_failure):
            self.launcher.delete(self.name)

    def logs(self) -> str:
        return self.launcher.collect_logs(self.name, self._selector)


def launch(
    launcher: CustomResourceLauncher,
    step: str,
    manifest_for: Callable[[str], dict[str, Any]],
    job_for: Callable[[str, int], CustomResourceJob],
    *,
    max_len: int = 63,
) -> Launch:
    """Start or adopt attempt N of ``step``: earlier attempts are found by label; ``manifest_for(name)`` builds
    the manifest of a new attempt named ``name``, which is labelled and applied; ``job_for(name, attempt)``
    makes the handle the step waits on."""
    existing = []
    for obj in launcher.list(f"{STEP_LABEL}={step}"):
        name, attempt = obj["metadata"]["name"], attempt_of(obj)
        require_same_spec(obj, with_attempt_labels(manifest_for(name), step, attempt), launcher.ref(name))
        existing.append(job_for(name, attempt))

    def create(attempt: int) -> RunningJob:
        name = attempt_name(step, attempt, max_len)
        obj = launcher.apply(with_attempt_labels(manifest_for(name), step, attempt))
        return job_for(obj["metadata"]["name"], attempt)

    return start_or_adopt(existing, create, clock=launcher.clock, what=launcher.plural)
