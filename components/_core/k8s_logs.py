"""Pod logs and events of a custom resource, gathered into one text for the step's log artifact."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException


def _err(err: ApiException) -> str:
    return f"{err.status} {err.reason}"


def _event_line(ev: Any) -> str:
    when = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp or ""
    obj = ev.involved_object
    return f"{when} {ev.type or ''} {obj.kind}/{obj.name} {ev.reason or ''}: {ev.message or ''}".strip()


def _events(core_api: Any, namespace: str, names: list[str]) -> list[str]:
    lines = []
    for obj_name in names:
        try:
            items = core_api.list_namespaced_event(namespace, field_selector=f"involvedObject.name={obj_name}").items
        except ApiException as err:
            lines.append(f"(events of {obj_name} unavailable: {_err(err)})")
            continue
        events = sorted(items, key=lambda e: str(e.last_timestamp or e.event_time or e.first_timestamp or ""))
        lines.extend(_event_line(e) for e in events)
    return lines


def _container_logs(core_api: Any, namespace: str, pod: Any, tail_lines: int | None) -> list[str]:
    out = []
    restarts = {s.name: s.restart_count for s in (pod.status.container_statuses or [])} if pod.status else {}
    containers = [*(pod.spec.init_containers or []), *pod.spec.containers]
    for c in containers:
        runs = [True, False] if restarts.get(c.name, 0) > 0 else [False]
        for previous in runs:
            label = " (previous run)" if previous else ""
            out.append(f"===== pod {pod.metadata.name} container {c.name}{label} =====")
            kwargs: dict[str, Any] = {"container": c.name}
            if previous:
                kwargs["previous"] = True
            if tail_lines is not None:
                kwargs["tail_lines"] = tail_lines
            try:
                text = core_api.read_namespaced_pod_log(pod.metadata.name, namespace, **kwargs)
            except ApiException as err:
                text = f"(logs unavailable: {_err(err)})"
            out.append(str(text).rstrip("\n"))
    return out


def collect(
    core_api: Any, namespace: str, name: str, label_selector: str | None, *, tail_lines: int | None = None
) -> str:
    """Logs of every container of the pods matching ``label_selector``, then events of ``name`` and pods."""
    if core_api is None:
        return f"(no CoreV1Api client given: logs and events of {name} not collected)\n"
    lines: list[str] = []
    pods: list[Any] = []
    if label_selector:
        try:
            pods = sorted(
                core_api.list_namespaced_pod(namespace, label_selector=label_selector).items,
                key=lambda p: p.metadata.name,
            )
        except ApiException as err:
            lines.append(f"(pods matching {label_selector!r} unavailable: {_err(err)})")
        if not pods and not lines:
            lines.append(f"(no pods match {label_selector!r})")
    for pod in pods:
        lines.extend(_container_logs(core_api, namespace, pod, tail_lines))
    lines.append(f"===== events of {name} and its pods =====")
    lines.extend(_events(core_api, namespace, [name, *(p.metadata.name for p in pods)]) or ["(no events)"])
    return "\n".join(lines) + "\n"
