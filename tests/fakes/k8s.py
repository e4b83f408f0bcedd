"""In-memory Kubernetes API fakes with real semantics, for launcher tests.

``FakeCustomObjectsApi`` mimics the apiserver for custom resources with a status subresource: create assigns
uid / resourceVersion / generation / creationTimestamp and ignores ``status``; duplicates get 409
AlreadyExists; missing objects 404; replace / patch reject a stale ``resourceVersion`` with 409 Conflict and
bump it; spec changes bump ``generation``; ``*_status`` writes only status; delete with foreground propagation
may linger with ``deletionTimestamp`` (``deletion_polls``) and garbage-collects owned pods.
``FakeCoreV1Api`` serves pods (real ``V1Pod`` models), their logs and events.
Test drivers: ``set_condition`` / ``script`` (operator-like condition transitions), ``crash_after_create``
and ``fail_next`` (fault injection).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import uuid
from collections import defaultdict, deque
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.fakes.clock import ManualClock  # noqa: F401  (re-exported for the k8s tests)

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class SimulatedCrash(Exception):
    """The step's process 'died' right after the apiserver accepted a create."""


def api_error(status: int, reason: str, message: str = "", why: str = "") -> ApiException:
    """An ``ApiException`` shaped like the real client's: HTTP ``reason``, a ``Status`` body with ``why``."""
    err = ApiException(status=status, reason=reason)
    err.body = json.dumps(
        {
            "apiVersion": "v1",
            "code": status,
            "kind": "Status",
            "message": message,
            "reason": why or reason.replace(" ", ""),
            "status": "Failure",
        }
    )
    return err


class FakeClock:
    """Deterministic timestamps shared by the fakes (one second per tick)."""

    def __init__(self) -> None:
        self._ticks = itertools.count(1)

    def stamp(self) -> str:
        return (_EPOCH + dt.timedelta(seconds=next(self._ticks))).strftime("%Y-%m-%dT%H:%M:%SZ")

    def dt(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(seconds=next(self._ticks))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeCustomObjectsApi:
    """``CustomObjectsApi`` subset: create, get, list, replace, patch, patch status, delete."""

    def __init__(self, core: FakeCoreV1Api | None = None, clock: FakeClock | None = None):
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.core = core
        self.clock = clock or (core.clock if core else FakeClock())
        self.calls: list[tuple[str, str]] = []  # (method, name)
        self.deletions: list[tuple[str, str | None]] = []  # (name, propagation_policy)
        self.deletion_polls = 0  # foreground deletions linger for this many reads
        self._linger: dict[tuple[str, str, str, str], int] = {}
        self._rv = itertools.count(1)
        self._faults: dict[str, deque[BaseException]] = defaultdict(deque)
        self._scripts: dict[str, deque[tuple[str, str, str, str]]] = defaultdict(deque)

    # ----- fault injection and drivers -----
    def fail_next(self, method: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``error`` without touching state."""
        self._faults[method].extend([error] * times)

    def crash_after_create(self) -> None:
        """The next create is stored by the 'server', then the caller sees ``SimulatedCrash``."""
        self._faults["create_after"].append(SimulatedCrash("process killed right after create"))

    def _fault(self, method: str, name: str) -> None:
        self.calls.append((method, name))
        if self._faults[method]:
            raise self._faults[method].popleft()

    def script(self, name: str, *steps: str | tuple[str, ...]) -> None:
        """On each later read of ``name``, apply one step first: a condition type, or ``(type, status,
        reason, message)``; ``"-"`` is a read with no change."""
        defaults = ("-", "True", "", "")
        for step in steps:
            given = (step,) if isinstance(step, str) else tuple(step)
            full = given + defaults[len(given) :]
            self._scripts[name].append((full[0], full[1], full[2], full[3]))

    def set_condition(
        self,
        plural: str,
        name: str,
        type_: str,
        status: str = "True",
        reason: str = "",
        message: str = "",
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Set a condition the way the training operator / Katib do: Succeeded or Failed turn Running off."""
        key = self._find(plural, name, namespace)
        obj = self.objects[key]
        conds = obj.setdefault("status", {}).setdefault("conditions", [])
        now = self.clock.stamp()
        if status == "True" and type_ in ("Succeeded", "Failed"):
            for c in conds:
                if c["type"] == "Running" and c["status"] == "True":
                    c.update(status="False", lastTransitionTime=now)
        for c in conds:
            if c["type"] == type_:
                if c["status"] != status:
                    c["lastTransitionTime"] = now
                c.update(status=status, reason=reason or type_, message=message, lastUpdateTime=now)
                break
        else:
            conds.append(
                {
                    "lastTransitionTime": now,
                    "lastUpdateTime": now,
                    "message": message,
                    "reason": reason or type_,
                    "status": status,
                    "type": type_,
                }
            )
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    def _find(self, plural: str, name: str, namespace: str | None) -> tuple[str, str, str, str]:
        for key in self.objects:
            if key[2] == plural and key[3] == name and (namespace is None or key[1] == namespace):
                return key
        raise KeyError(f"no {plural} {name}")

    def stored(self, plural: str) -> list[dict[str, Any]]:
        """Copies of all stored objects of ``plural``."""
        return [copy.deepcopy(o) for k, o in sorted(self.objects.items()) if k[2] == plural]

    # ----- the API -----
    @staticmethod
    def _key(group: str, namespace: str, plural: str, name: str) -> tuple[str, str, str, str]:
        return (group, namespace, plural, name)

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any], **kwargs: Any
    ) -> dict[str, Any]:
        name = (body.get("metadata") or {}).get("name", "")
        self._fault("create", name)
        if body.get("apiVersion") != f"{group}/{version}":
            raise api_error(400, "Bad Request", f"apiVersion {body.get('apiVersion')} does not match the URL")
        if not name:
            raise api_error(422, "Unprocessable Entity", "metadata.name: Required value")
        if body["metadata"].get("namespace", namespace) != namespace:
            raise api_error(400, "Bad Request", "the namespace of the object does not match the URL")
        key = self._key(group, namespace, plural, name)
        if key in self.objects:
            raise api_error(409, "Conflict", f'{plural}.{group} "{name}" already exists', "AlreadyExists")
        obj = copy.deepcopy(body)
        obj.pop("status", None)  # status subresource: ignored on create
        meta = obj["metadata"]
        for k in ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp"):
            meta.pop(k, None)
        meta.update(
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(self._rv)),
            generation=1,
            creationTimestamp=self.clock.stamp(),
        )
        self.objects[key] = obj
        if self._faults["create_after"]:
            raise self._faults["create_after"].popleft()
        return copy.deepcopy(obj)

    def _get(self, group: str, namespace: str, plural: str, name: str) -> dict[str, Any]:
        key = self._key(group, namespace, plural, name)
        if key in self._linger:
            self._linger[key] -= 1
            if self._linger[key] < 0:
                self._remove(key)
        if key not in self.objects:
            raise api_error(404, "Not Found", f'{plural}.{group} "{name}" not found')
        return self.objects[key]

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any
    ) -> dict[str, Any]:
        self._fault("get", name)
        obj = self._get(group, namespace, plural, name)
        if self._scripts[name]:
            type_, status, reason, message = self._scripts[name].popleft()
            if type_ != "-":
                self.set_condition(plural, name, type_, status, reason, message, namespace)
        return copy.deepcopy(obj)

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]:
        self._fault("list", "")
        selector = kwargs.get("label_selector")
        items = [copy.deepcopy(o) for k, o in sorted(self.objects.items()) if k[:3] == (group, namespace, plural)
                 and FakeCoreV1Api._matches(o["metadata"].get("labels") or {}, selector)]
        return {
            "apiVersion": f"{group}/{version}",
            "items": items,
            "kind": "List",
            "metadata": {"resourceVersion": str(next(self._rv))},
        }

    def _write(
        self, key: tuple[str, str, str, str], new: dict[str, Any], sent_rv: str | None, status_only: bool
    ) -> dict[str, Any]:
        old = self.objects[key]
        if sent_rv is not None and sent_rv != old["metadata"]["resourceVersion"]:
            raise api_error(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if status_only:
            merged = {**copy.deepcopy(old), "status": copy.deepcopy(new.get("status", {}))}
        else:
            merged = {**copy.deepcopy(new), "status": copy.deepcopy(old.get("status", {}))}
            if not merged["status"]:
                merged.pop("status")
            for k in ("uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp"):
                if k in old["metadata"]:
                    merged["metadata"][k] = old["metadata"][k]
            if merged.get("spec") != old.get("spec"):
                merged["metadata"]["generation"] = old["metadata"]["generation"] + 1
        merged["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = merged
        return copy.deepcopy(merged)

    def replace_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._fault("replace", name)
        self._get(group, namespace, plural, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv is None:
            raise api_error(422, "Unprocessable Entity", "metadata.resourceVersion: must be specified for an update")
        return self._write(self._key(group, namespace, plural, name), body, rv, status_only=False)

    def patch_namespaced_custom_object(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._fault("patch", name)
        old = self._get(group, namespace, plural, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return self._write(self._key(group, namespace, plural, name), merge_patch(old, body), rv, False)

    def patch_namespaced_custom_object_status(
        self,
        group: str,
        version: str,
        namespace: str,
        plural: str,
        name: str,
        body: dict[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any]:
        self._fault("patch_status", name)
        old = self._get(group, namespace, plural, name)
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return self._write(self._key(group, namespace, plural, name), merge_patch(old, body), rv, True)

    def delete_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, **kwargs: Any
    ) -> dict[str, Any]:
        self._fault("delete", name)
        key = self._key(group, namespace, plural, name)
        obj = self._get(group, namespace, plural, name)
        policy = kwargs.get("propagation_policy")
        self.deletions.append((name, policy))
        if policy == "Foreground" and self.deletion_polls > 0:
            if key not in self._linger:
                obj["metadata"]["deletionTimestamp"] = self.clock.stamp()
                obj["metadata"].setdefault("finalizers", []).append("foregroundDeletion")
                obj["metadata"]["resourceVersion"] = str(next(self._rv))
                self._linger[key] = self.deletion_polls
            return copy.deepcopy(obj)
        self._remove(key)
        return {"apiVersion": "v1", "kind": "Status", "status": "Success"}

    def _remove(self, key: tuple[str, str, str, str]) -> None:
        obj = self.objects.pop(key, None)
        self._linger.pop(key, None)
        if obj is not None and self.core is not None:
            self.core.collect_garbage(obj["metadata"]["uid"])


class FakeCoreV1Api:
    """``CoreV1Api`` subset for logs: list pods by label selector, read pod logs, list events."""

    def __init__(self, clock: FakeClock | None = None):
        self.clock = clock or FakeClock()
        self.pods: dict[tuple[str, str], k8s.V1Pod] = {}
        self.logs: dict[tuple[str, str, str, bool], str] = {}
        self.events: list[k8s.CoreV1Event] = []

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        *,
        logs: dict[str, str],
        owner: dict[str, Any] | None = None,
        restarts: dict[str, int] | None = None,
        previous_logs: dict[str, str] | None = None,
    ) -> k8s.V1Pod:
        """A pod whose containers (one per ``logs`` key) printed ``logs``; owned by ``owner`` if given."""
        owners = None
        if owner is not None:
            owners = [
                k8s.V1OwnerReference(
                    api_version=owner["apiVersion"],
                    kind=owner["kind"],
                    name=owner["metadata"]["name"],
                    uid=owner["metadata"]["uid"],
                    controller=True,
                )
            ]
        restarts = restarts or {}
        pod = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels=dict(labels),
                owner_references=owners,
                creation_timestamp=self.clock.dt(),
            ),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=c, image="img") for c in logs]),
            status=k8s.V1PodStatus(
                phase="Running",
                container_statuses=[
                    k8s.V1ContainerStatus(
                        name=c, image="img", image_id="", ready=True, restart_count=restarts.get(c, 0)
                    )
                    for c in logs
                ],
            ),
        )
        self.pods[(namespace, name)] = pod
        for c, text in logs.items():
            self.logs[(namespace, name, c, False)] = text
        for c, text in (previous_logs or {}).items():
            self.logs[(namespace, name, c, True)] = text
        return pod

    def add_event(self, namespace: str, kind: str, name: str, reason: str, message: str, type_: str = "Normal") -> None:
        when = self.clock.dt()
        self.events.append(
            k8s.CoreV1Event(
                metadata=k8s.V1ObjectMeta(name=f"{name}.{len(self.events)}", namespace=namespace),
                involved_object=k8s.V1ObjectReference(kind=kind, name=name, namespace=namespace),
                reason=reason,
                message=message,
                type=type_,
                last_timestamp=when,
                first_timestamp=when,
            )
        )

    def collect_garbage(self, owner_uid: str) -> None:
        """Delete pods owned by ``owner_uid`` (what the garbage collector does after the owner goes)."""
        for key, pod in list(self.pods.items()):
            if any(ref.uid == owner_uid for ref in pod.metadata.owner_references or []):
                del self.pods[key]

    @staticmethod
    def _matches(labels: dict[str, str], selector: str | None) -> bool:
        for term in filter(None, (selector or "").split(",")):
            if "!=" in term:
                k, v = term.split("!=", 1)
                if labels.get(k.strip()) == v.strip():
                    return False
            elif "=" in term:
                k, v = term.replace("==", "=").split("=", 1)
                if labels.get(k.strip()) != v.strip():
                    return False
            elif term.strip() not in labels:
                return False
        return True

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> k8s.V1PodList:
        items = [
            copy.deepcopy(p)
            for (ns, _), p in sorted(self.pods.items())
            if ns == namespace and self._matches(p.metadata.labels or {}, kwargs.get("label_selector"))
        ]
        return k8s.V1PodList(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> str:
        pod = self.pods.get((namespace, name))
        if pod is None:
            raise api_error(404, "Not Found", f'pods "{name}" not found')
        containers = [c.name for c in pod.spec.containers]
        container = kwargs.get("container")
        if container is None:
            if len(containers) != 1:
                raise api_error(
                    400,
                    "Bad Request",
                    f"a container name must be specified for pod {name}, choose one of: {containers}",
                )
            container = containers[0]
        if container not in containers:
            raise api_error(400, "Bad Request", f"container {container} is not valid for pod {name}")
        previous = bool(kwargs.get("previous"))
        text = self.logs.get((namespace, name, container, previous))
        if text is None:
            if previous:
                raise api_error(
                    400,
                    "Bad Request",
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            text = ""
        tail = kwargs.get("tail_lines")
        if tail is not None:
            text = "\n".join(text.splitlines()[-int(tail) :]) + ("\n" if text.endswith("\n") else "")
        return text

    def list_namespaced_event(self, namespace: str, **kwargs: Any) -> k8s.CoreV1EventList:
        selector = kwargs.get("field_selector") or ""
        wanted = dict(t.split("=", 1) for t in selector.split(",") if "=" in t)
        items = [
            copy.deepcopy(e)
            for e in self.events
            if e.metadata.namespace == namespace
            and all(
                v
                == {
                    "involvedObject.name": e.involved_object.name,
                    "involvedObject.kind": e.involved_object.kind,
                }.get(k)
                for k, v in wanted.items()
            )
        ]
        return k8s.CoreV1EventList(items=items)
