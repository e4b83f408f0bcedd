"""Restricted Pod Security Standard settings, applied by every manifest builder through ``restrict_pod_spec``.

See https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted. ``violations`` checks
a pod spec against the same rules independently, for tests and for manifests built elsewhere.
"""

from __future__ import annotations

import copy
from typing import Any

DEFAULT_UID = 10001  # the catalog images run as USER 10001:10001
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
    "name",
}
_ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}


def pod_security_context(run_as_user: int = DEFAULT_UID, fs_group: int | None = None) -> dict[str, Any]:
    """Pod-level ``securityContext`` meeting the restricted profile."""
    if run_as_user <= 0:
        raise ValueError(f"run_as_user must be a non-zero uid, got {run_as_user}")
    ctx: dict[str, Any] = {
        "runAsGroup": run_as_user,
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group is not None:
        ctx["fsGroup"] = fs_group
    return ctx


def container_security_context() -> dict[str, Any]:
    """Container-level ``securityContext`` meeting the restricted profile."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restrict_pod_spec(
    pod_spec: dict[str, Any], *, run_as_user: int = DEFAULT_UID, fs_group: int | None = None
) -> dict[str, Any]:
    """A copy of ``pod_spec`` with restricted security contexts on the pod and on every container.

    Restricted keys win over what the input sets; other keys of existing contexts are kept.
    """
    out = copy.deepcopy(pod_spec)
    out["securityContext"] = {**out.get("securityContext", {}), **pod_security_context(run_as_user, fs_group)}
    for key in _CONTAINER_LISTS:
        for container in out.get(key, []):
            container["securityContext"] = {
                **container.get("securityContext", {}),
                **container_security_context(),
            }
    problems = violations(out)
    if problems:
        raise ValueError("pod spec cannot meet the restricted profile: " + "; ".join(problems))
    return out


def _effective(pod_ctx: dict[str, Any], ctx: dict[str, Any], key: str) -> Any:
    return ctx[key] if key in ctx else pod_ctx.get(key)


def violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every way ``pod_spec`` breaks the restricted Pod Security Standard (empty when it complies)."""
    found = []
    pod_ctx = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            found.append(f"{flag} must not be true")
    for vol in pod_spec.get("volumes", []):
        bad = set(vol) - _ALLOWED_VOLUMES
        if bad:
            found.append(f"volume {vol.get('name')!r} uses disallowed type(s) {sorted(bad)}")
    if pod_ctx.get("runAsUser") == 0:
        found.append("pod runAsUser must not be 0")
    for key in _CONTAINER_LISTS:
        for c in pod_spec.get(key, []):
            where = f"container {c.get('name')!r}"
            ctx = c.get("securityContext") or {}
            if ctx.get("privileged"):
                found.append(f"{where}: privileged must not be true")
            if ctx.get("allowPrivilegeEscalation") is not False:
                found.append(f"{where}: allowPrivilegeEscalation must be false")
            caps = ctx.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                found.append(f"{where}: capabilities must drop ALL")
            if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
                found.append(f"{where}: only NET_BIND_SERVICE may be added")
            if _effective(pod_ctx, ctx, "runAsNonRoot") is not True:
                found.append(f"{where}: runAsNonRoot must be true")
            if _effective(pod_ctx, ctx, "runAsUser") == 0:
                found.append(f"{where}: runAsUser must not be 0")
            seccomp = (_effective(pod_ctx, ctx, "seccompProfile") or {}).get("type")
            if seccomp not in _ALLOWED_SECCOMP:
                found.append(f"{where}: seccompProfile.type must be RuntimeDefault or Localhost")
            if any(p.get("hostPort") for p in c.get("ports", [])):
                found.append(f"{where}: hostPort must not be set")
    return found
