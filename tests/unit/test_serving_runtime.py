"""The catalog's ServingRuntime (manifests/serving-runtime.yaml): valid against the vendored CRD schema (strict),
restricted, naming the exact serving image, and passing arguments the catalog's model server accepts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components._core.images import image
from components._core.podsecurity import violations
from components.serving.target import KServeTarget
from tests.schemas import SERVINGRUNTIME, validate_crd

MANIFEST = Path(__file__).resolve().parents[2] / "manifests" / "serving-runtime.yaml"


@pytest.fixture(scope="module")
def runtime() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def test_it_is_a_valid_serving_runtime(runtime: dict[str, Any]) -> None:
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    validate_crd(runtime, SERVINGRUNTIME)


def test_a_misspelt_field_fails_the_schema_check(runtime: dict[str, Any]) -> None:
    bad = copy.deepcopy(runtime)
    bad["spec"]["protocolVersion"] = bad["spec"].pop("protocolVersions")
    with pytest.raises(AssertionError, match="protocolVersion"):
        validate_crd(bad, SERVINGRUNTIME)


def test_it_is_what_the_inference_services_ask_for(runtime: dict[str, Any]) -> None:
    default = KServeTarget()
    assert runtime["metadata"]["name"] == default.runtime
    assert [f["name"] for f in runtime["spec"]["supportedModelFormats"]] == [default.model_format]
    assert runtime["spec"]["supportedModelFormats"][0]["autoSelect"] is True
    assert runtime["spec"]["protocolVersions"] == ["v1", "v2"]


def test_its_containers_meet_the_restricted_profile(runtime: dict[str, Any]) -> None:
    spec = runtime["spec"]
    assert violations({"containers": spec["containers"], "volumes": spec.get("volumes", [])}) == []
    loosened = copy.deepcopy(spec["containers"])
    loosened[0]["securityContext"]["allowPrivilegeEscalation"] = True
    assert violations({"containers": loosened}) != []


def test_the_container_runs_the_model_server_from_the_exact_serving_image(runtime: dict[str, Any]) -> None:
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # KServe merges the InferenceService's model into this one
    assert container["image"] == image("serving")
    assert container["command"] == ["python", "-m", "components.serving.server"]
    assert container["args"] == ["--model_name={{.Name}}", "--model_dir=/mnt/models", "--http_port=8080"]
    assert container["ports"][0]["containerPort"] == 8080
    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": "/v2/models/{{.Name}}/ready", "port": 8080}  # the model's own readiness


def test_the_model_server_accepts_the_arguments_kserve_passes(runtime: dict[str, Any]) -> None:
    from components.serving.server import parser

    (container,) = runtime["spec"]["containers"]
    args = [a.replace("{{.Name}}", "churn") for a in container["args"]]  # KServe's ReplacePlaceholders
    parsed = parser().parse_args(args)
    assert (parsed.model_name, parsed.model_uri, parsed.http_port) == ("churn", "/mnt/models", 8080)
