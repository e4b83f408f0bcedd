"""Preflight: before anything is launched, ask the API server (SelfSubjectAccessReview) whether the identity a step
runs as may do what the catalog's launchers do in a namespace, and name each verb it lacks.

``REQUIRED`` is the one list of what each launcher family needs; ``manifests/rbac.yaml`` grants it (a test keeps
the two equal), and the checks here ask for exactly it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from components._core.jobs import call_with_retry
from components._core.k8s import api_policy
from components._core.waiting import Clock

MANAGE = ("create", "get", "list", "watch", "patch", "delete")
READ = ("get", "list", "watch")


@dataclass(frozen=True)
class Permission:
    """One verb on one resource (``resource`` may name a subresource: ``pods/log``) of an API group."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}"


def _grant(group: str, resources: Iterable[str], verbs: Iterable[str]) -> list[Permission]:
    return [Permission(group, r, v) for r in resources for v in verbs]


# What each launcher family does in the namespace (the shared launcher: create-or-adopt, list by label, patch,
# delete, watch status; the log and event collection on failure).
REQUIRED: dict[str, list[Permission]] = {
    "pytorchjob": _grant("kubeflow.org", ["pytorchjobs"], MANAGE) + _grant("kubeflow.org", ["pytorchjobs/status"],
                                                                        READ),
    "katib": _grant("kubeflow.org", ["experiments"], MANAGE)
    + _grant("kubeflow.org", ["experiments/status", "trials", "suggestions"], READ),
    "kserve": _grant("serving.kserve.io", ["inferenceservices"], MANAGE)
    + _grant("serving.kserve.io", ["inferenceservices/status"], ["get"]),
    "logs": _grant("", ["pods", "pods/log", "events"], READ),
}


@dataclass(frozen=True)
class Finding:
    """The answer for one permission."""

    family: str
    permission: Permission
    allowed: bool
    reason: str = ""


class PreflightError(RuntimeError):
    """The access reviews themselves could not be made (no credentials, or reviews forbidden)."""


def default_authorization_api() -> Any:
    """``AuthorizationV1Api`` from in-cluster config (a step's pod), else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.AuthorizationV1Api()


def _review(namespace: str, p: Permission) -> Any:
    from kubernetes import client

    resource, _, subresource = p.resource.partition("/")
    attributes = client.V1ResourceAttributes(namespace=namespace, group=p.group, resource=resource,
                                             subresource=subresource or None, verb=p.verb)
    return client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=attributes))


def check(namespace: str, families: Sequence[str] = tuple(REQUIRED), *, api: Any = None,
          clock: Clock | None = None) -> list[Finding]:
    """One finding per permission the ``families`` need in ``namespace``; 429/5xx answers are retried with
    backoff. ``ValueError`` names an unknown family; ``PreflightError`` says why reviews could not be made."""
    unknown = sorted(set(families) - set(REQUIRED))
    if unknown:
        raise ValueError(f"unknown launcher families {unknown}; choose from {sorted(REQUIRED)}")
    api = api or default_authorization_api()
    policy = api_policy(poll_interval_s=1.0, transient_budget_s=60.0)
    findings = []
    for family in families:
        for p in REQUIRED[family]:
            body = _review(namespace, p)
            try:
                answer = call_with_retry(functools.partial(api.create_self_subject_access_review, body), policy,
                                         what=f"access review of {p}", clock=clock)
            except Exception as err:
                raise PreflightError(f"could not ask the API server whether this identity may {p} in namespace "
                                     f"{namespace!r}: {err}") from err
            status = answer.status
            findings.append(Finding(family, p, bool(status.allowed), str(status.reason or "")))
    return findings


def missing(findings: Iterable[Finding]) -> list[str]:
    """One line per denied permission: ``family: verb resource.group (reason)``."""
    return [f"{f.family}: {f.permission}" + (f" ({f.reason})" if f.reason else "") for f in findings
            if not f.allowed]
