"""The one launcher for Kubernetes custom resources (PyTorchJob, Katib Experiment, InferenceService).

Create-or-adopt under a deterministic name (a retried step never makes a second object), wait on status
conditions with a deadline, fail when the resource fails, collect pod logs and events, delete on SIGTERM.
The kubernetes clients are passed in: ``api`` is ``CustomObjectsApi``-compatible, ``core_api``
``CoreV1Api``-compatible, so tests use a fake with real semantics.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from components._core.artifacts import write_text
from components._core.k8s_logs import collect
from components._core.k8s_meta import SPEC_HASH_ANNOTATION, canonical, deterministic_name, spec_hash
from components._core.signals import Terminated, on_sigterm
from components._core.waiting import Clock, DeadlineExceeded, wait_for

__all__ = [
    "Cleanup",
    "CustomResourceLauncher",
    "DeadlineExceeded",
    "ResourceConflict",
    "ResourceFailed",
    "ResourceGone",
    "Terminated",
    "canonical",
    "default_clients",
    "deterministic_name",
    "generation_observed",
    "on_sigterm",
    "spec_hash",
    "terminal_condition",
]

log = logging.getLogger(__name__)
_TRANSIENT = {429, 500, 502, 503, 504}


class ResourceConflict(RuntimeError):
    """An object with the same name exists but was created from a different spec."""


class ResourceGone(RuntimeError):
    """The awaited object was deleted (by someone else, or cancelled)."""


class ResourceFailed(RuntimeError):
    """The resource reached a failed condition; ``condition`` and ``obj`` hold the evidence."""

    def __init__(self, message: str, condition: dict[str, Any], obj: dict[str, Any]):
        super().__init__(message)
        self.condition = condition
        self.obj = obj


@dataclass(frozen=True)
class Cleanup:
    """When to delete the resource: on cancel (SIGTERM, deadline, interrupt) always; these are optional."""

    on_success: bool = False
    on_failure: bool = False


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


@dataclass(frozen=True)
class _Snapshot:
    obj: dict[str, Any] | None

    def __str__(self) -> str:
        if self.obj is None:
            return "unknown (API unavailable)"
        conds = (self.obj.get("status") or {}).get("conditions") or []
        return ", ".join(f"{c.get('type')}={c.get('status')}" for c in conds) or "no conditions yet"


class CustomResourceLauncher:
    """Create-or-adopt, wait, collect logs and delete one kind of namespaced custom resource."""

    def __init__(
        self,
        api: Any,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        core_api: Any = None,
        clock: Clock | None = None,
        interval_s: float = 5.0,
    ):
        if api is None:  # not injected: the step's own cluster (in-cluster config, else kubeconfig)
            api, default_core = default_clients()
            core_api = core_api or default_core
        self.api, self.core_api = api, core_api
        self.group, self.version, self.plural, self.namespace = group, version, plural, namespace
        self.clock = clock or Clock()
        self.interval_s = interval_s

    def _args(self) -> tuple[str, str, str, str]:
        return self.group, self.version, self.namespace, self.plural

    def _ref(self, name: str) -> str:
        return f"{self.plural}.{self.group}/{self.version} {self.namespace}/{name}"

    def get(self, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return dict(self.api.get_namespaced_custom_object(*self._args(), name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

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
                created = dict(self.api.create_namespaced_custom_object(*self._args(), body))
                log.info("created %s", self._ref(name))
                return created
            except ApiException as err:
                if err.status != 409:
                    raise
            existing = self.get(name)
            if existing is None:  # deleted between our create and get: try again
                continue
            if existing.get("metadata", {}).get("deletionTimestamp"):
                log.info("%s is being deleted; waiting before creating it again", self._ref(name))
                wait_for(
                    lambda: self.get(name),
                    lambda o: o is None,
                    timeout_s=deletion_timeout_s,
                    interval_s=self.interval_s,
                    what=f"deletion of {self._ref(name)}",
                    clock=self.clock,
                )
                continue
            theirs = (existing.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
            if theirs != digest:
                raise ResourceConflict(
                    f"{self._ref(name)} exists with spec hash {theirs!r}, not {digest!r}: it was made "
                    "from a different spec; delete it or use another run/task name"
                )
            log.info("adopted existing %s (same spec hash)", self._ref(name))
            return existing
        raise ResourceConflict(f"could not create or adopt {self._ref(name)}: it keeps appearing and vanishing")

    def wait(
        self,
        name: str,
        *,
        timeout_s: float,
        succeeded: Iterable[str] = ("Succeeded",),
        failed: Iterable[str] = ("Failed",),
        interval_s: float | None = None,
        on_poll: Callable[[dict[str, Any] | None], None] | None = None,
        settled: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Poll until a terminal condition; return the object on success, raise ``ResourceFailed`` on
        failure, ``ResourceGone`` if deleted, ``DeadlineExceeded`` after ``timeout_s``. Transient API errors
        (429, 5xx) are retried until the deadline. ``settled`` must also hold for success (e.g.
        ``generation_observed``, so a Ready left over from before a patch does not count)."""
        ok, bad = tuple(succeeded), tuple(failed)

        def poll() -> _Snapshot:
            try:
                obj = self.get(name)
            except ApiException as err:
                if err.status in _TRANSIENT:
                    log.warning("transient API error reading %s: %s %s", self._ref(name), err.status, err.reason)
                    return _Snapshot(None)
                raise
            if obj is None:
                raise ResourceGone(f"{self._ref(name)} was deleted while waiting for it")
            if on_poll is not None:
                on_poll(obj)
            return _Snapshot(obj)

        def done(snap: _Snapshot) -> bool:
            if snap.obj is None:
                return False
            outcome = terminal_condition(snap.obj, ok, bad)[0]
            if outcome == "succeeded" and settled is not None:
                return settled(snap.obj)
            return outcome is not None

        snap = wait_for(
            poll,
            done,
            timeout_s=timeout_s,
            interval_s=interval_s or self.interval_s,
            what=self._ref(name),
            clock=self.clock,
        )
        assert snap.obj is not None
        outcome, cond = terminal_condition(snap.obj, ok, bad)
        if outcome == "failed":
            assert cond is not None
            raise ResourceFailed(
                f"{self._ref(name)} failed: {cond.get('reason', '')}: {cond.get('message', '')}",
                cond,
                snap.obj,
            )
        return snap.obj

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of ``name`` (e.g. an InferenceService's ``canaryTrafficPercent``)."""
        return dict(self.api.patch_namespaced_custom_object(*self._args(), name, body))

    def delete(self, name: str) -> bool:
        """Delete with foreground propagation (pods go first); False if it was already gone."""
        try:
            self.api.delete_namespaced_custom_object(*self._args(), name, propagation_policy="Foreground")
        except ApiException as err:
            if err.status == 404:
                return False
            raise
        log.info("deleted %s", self._ref(name))
        return True

    def collect_logs(self, name: str, label_selector: str | None = None, *, tail_lines: int | None = None) -> str:
        """Logs of every container of the pods matching ``label_selector`` (previous run too when a container
        restarted), then the events of the object and of those pods. Errors are reported inline."""
        return collect(self.core_api, self.namespace, name, label_selector, tail_lines=tail_lines)

    @contextmanager
    def managed(self, name: str, cleanup: Cleanup | None = None) -> Iterator[None]:
        """Delete ``name`` on SIGTERM, deadline or interrupt inside the block; on success or failure
        (``ResourceFailed``) as ``cleanup`` says. Other errors leave it for a retried step to adopt."""
        policy = cleanup or Cleanup()
        deleted = False

        def cancel() -> None:
            nonlocal deleted
            if not deleted:
                deleted = True
                self.delete(name)

        with on_sigterm(cancel):
            try:
                yield
            except ResourceFailed:
                if policy.on_failure:
                    cancel()
                raise
            except (DeadlineExceeded, Terminated, KeyboardInterrupt):
                cancel()
                raise
            if policy.on_success:
                cancel()

    def watch(
        self,
        name: str,
        *,
        timeout_s: float,
        label_selector: str | None = None,
        logs_uri: str | None = None,
        cleanup: Cleanup | None = None,
        succeeded: Iterable[str] = ("Succeeded",),
        failed: Iterable[str] = ("Failed",),
        interval_s: float | None = None,
        settled: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """``wait`` under ``managed``, then logs and events to ``logs_uri`` whatever the outcome (before any
        cleanup deletes the pods). Returns the succeeded object; a failure's message names the logs."""
        with self.managed(name, cleanup):
            try:
                return self.wait(
                    name,
                    timeout_s=timeout_s,
                    succeeded=succeeded,
                    failed=failed,
                    interval_s=interval_s,
                    settled=settled,
                )
            except ResourceFailed as err:
                where = f"; logs and events: {logs_uri}" if logs_uri else ""
                raise ResourceFailed(f"{err}{where}", err.condition, err.obj) from None
            finally:
                if logs_uri:
                    self.write_logs(name, label_selector, logs_uri)

    def run(self, manifest: dict[str, Any], **watch: Any) -> dict[str, Any]:
        """``apply`` then ``watch`` (same keyword arguments)."""
        return self.watch(self.apply(manifest)["metadata"]["name"], **watch)

    def write_logs(self, name: str, label_selector: str | None, logs_uri: str) -> None:
        """``collect_logs`` into ``logs_uri``; a collection error is written there and logged, never raised,
        so it cannot hide the step's own outcome."""
        try:
            text = self.collect_logs(name, label_selector)
        except Exception as err:  # the step's real error must win over a log-collection error
            log.warning("could not collect logs of %s: %s", self._ref(name), err)
            text = f"(log collection failed: {type(err).__name__}: {err})\n"
        write_text(text, logs_uri)
