"""Static manifests under manifests/ validate against the real Kubernetes schemas (strict, offline)."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

MANIFESTS = sorted((Path(__file__).resolve().parents[2] / "manifests").glob("*.yaml"))
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict]]:
    return [(f"{p.name}:{d['kind']}/{d['metadata']['name']}", d)
            for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]


def is_core(doc: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return group == "" or group.endswith(".k8s.io")


CORE = [(n, d) for n, d in documents() if is_core(d)]


@pytest.mark.parametrize("name,doc", CORE, ids=[n for n, _ in CORE])
def test_core_manifests_are_valid(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_validation_catches_a_typo() -> None:
    bad = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "automountToken": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_launcher_role_grants_no_wildcards_or_secrets() -> None:
    role = next(d for _, d in documents() if d["kind"] == "Role")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "secrets" not in rule["resources"]
