"""``catalog preflight``: SelfSubjectAccessReviews for what each launcher family does, answered by a fake API server
that applies the Role in ``manifests/rbac.yaml`` as RBAC would; that Role grants exactly what the launchers need."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from catalog.cli import build_parser, cmd_preflight
from components._core.preflight import REQUIRED, Permission, PreflightError, check, missing
from tests.fakes.clock import ManualClock

RBAC = Path(__file__).resolve().parents[2] / "manifests" / "rbac.yaml"


def role_rules() -> list[dict[str, Any]]:
    (role,) = [d for d in yaml.safe_load_all(RBAC.read_text()) if d and d["kind"] == "Role"]
    return list(role["rules"])


def granted(rules: list[dict[str, Any]]) -> set[Permission]:
    return {Permission(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]}


class FakeAuthorization:
    """``AuthorizationV1Api.create_self_subject_access_review`` answered from RBAC rules (exact match, as the
    Role uses no wildcards); ``fail`` holds exceptions raised by the next calls."""

    def __init__(self, rules: list[dict[str, Any]]) -> None:
        self.allowed = granted(rules)
        self.fail: list[Exception] = []
        self.reviews: list[client.V1ResourceAttributes] = []

    def create_self_subject_access_review(self, body: client.V1SelfSubjectAccessReview
                                          ) -> client.V1SelfSubjectAccessReview:
        if self.fail:
            raise self.fail.pop(0)
        a = body.spec.resource_attributes
        self.reviews.append(a)
        resource = a.resource + (f"/{a.subresource}" if a.subresource else "")
        ok = Permission(a.group, resource, a.verb) in self.allowed
        return client.V1SelfSubjectAccessReview(spec=body.spec, status=client.V1SubjectAccessReviewStatus(
            allowed=ok, reason="" if ok else "RBAC: no rule grants it"))


def preflight(api: FakeAuthorization, *argv: str) -> int:
    return cmd_preflight(build_parser().parse_args(["preflight", "--namespace", "team-a", *argv]), api=api)


def test_the_role_grants_exactly_what_the_launchers_need() -> None:
    needed = {p for perms in REQUIRED.values() for p in perms}
    assert granted(role_rules()) == needed  # nothing missing, nothing more (least privilege)


def test_with_the_role_every_permission_is_granted(capsys: pytest.CaptureFixture[str]) -> None:
    api = FakeAuthorization(role_rules())
    assert preflight(api) == 0
    assert f"all {sum(len(p) for p in REQUIRED.values())} permissions" in capsys.readouterr().out
    assert {a.namespace for a in api.reviews} == {"team-a"}
    log = next(a for a in api.reviews if a.subresource == "log")
    assert (log.group, log.resource, log.verb) == ("", "pods", "get")  # subresources asked as such


def test_each_missing_verb_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    rules = [r for r in role_rules() if "serving.kserve.io" not in r["apiGroups"]]
    rules = copy.deepcopy(rules)
    for r in rules:
        if "pytorchjobs" in r["resources"]:
            r["verbs"] = [v for v in r["verbs"] if v != "delete"]
    assert preflight(FakeAuthorization(rules)) == 1
    out = capsys.readouterr().out
    assert "kserve: create inferenceservices.serving.kserve.io (RBAC: no rule grants it)" in out
    assert "pytorchjob: delete pytorchjobs.kubeflow.org" in out
    assert "katib: delete experiments.kubeflow.org" in out  # same rule in the Role
    assert "logs:" not in out


def test_families_narrow_the_check() -> None:
    rules = [r for r in role_rules() if "serving.kserve.io" not in r["apiGroups"]]
    api = FakeAuthorization(rules)
    assert preflight(api, "--families", "pytorchjob,logs") == 0
    assert {a.group for a in api.reviews} == {"kubeflow.org", ""}
    assert preflight(api, "--families", "pytorchjob,spark") == 2


def test_transient_answers_are_retried_and_a_forbidden_review_is_an_error() -> None:
    api = FakeAuthorization(role_rules())
    api.fail = [ApiException(status=503, reason="Service Unavailable"), ApiException(status=429, reason="Slow")]
    clock = ManualClock()
    findings = check("team-a", ["logs"], api=api, clock=clock.clock())
    assert missing(findings) == [] and len(findings) == len(REQUIRED["logs"]) and clock.sleeps == [1.0, 2.0]
    api.fail = [ApiException(status=403, reason="Forbidden")]
    with pytest.raises(PreflightError, match="could not ask the API server whether this identity may get pods"):
        check("team-a", ["logs"], api=api)
