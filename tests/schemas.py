"""Validate rendered manifests against the real schemas vendored in ``manifests/crds`` (custom resources) and
kubernetes-validate (core kinds), offline.

Strict by default: where a schema lists ``properties`` and neither allows extra keys nor preserves unknown
fields, unknown keys are errors. The apiserver would silently prune them, so a misspelt field would vanish
without a trace; here it fails the test. ``x-kubernetes-*`` keys are otherwise ignored.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

CRDS = Path(__file__).resolve().parents[1] / "manifests" / "crds"
PYTORCHJOB = "pytorchjobs.kubeflow.org.v1.schema.json"
INFERENCESERVICE = "inferenceservices.serving.kserve.io.v1beta1.schema.json"
SERVINGRUNTIME = "servingruntimes.serving.kserve.io.v1alpha1.schema.json"
KATIB_SWAGGER = "katib-v1beta1.swagger.json"
K8S_VERSION = "1.30.0"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def _strict(node: Any) -> Any:
    """Copy of a schema with additionalProperties: false where the schema lists its properties."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(filename: str, strict: bool = True) -> dict[str, Any]:
    """The openAPIV3Schema of a CRD in ``manifests/crds``."""
    schema = json.loads((CRDS / filename).read_text())
    return _strict(schema) if strict else schema


def _errors(validator: jsonschema.protocols.Validator, obj: Any) -> list[str]:
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)
    )


def _raise(kind: str, errors: list[str]) -> None:
    if errors:
        raise AssertionError(f"{kind} is invalid:\n  " + "\n  ".join(errors[:30]))


def _check_metadata(obj: dict[str, Any], kind: str) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    errors = (
        []
        if (
            isinstance(name, str)
            and len(name) <= 63
            and jsonschema.Draft7Validator({"pattern": DNS1123_LABEL}).is_valid(name)
        )
        else [f"metadata.name {name!r} is not a DNS-1123 label"]
    )
    _raise(kind, errors)


def validate_crd(obj: dict[str, Any], filename: str, *, strict: bool = True) -> None:
    """Raise ``AssertionError`` listing every way ``obj`` breaks the CRD schema in ``filename``."""
    _check_metadata(obj, filename)
    _raise(filename, _errors(jsonschema.Draft7Validator(crd_schema(filename, strict)), obj))


def validate_pytorchjob(obj: dict[str, Any], *, strict: bool = True) -> None:
    """PyTorchJob against the kubeflow/trainer v1.9.4 CRD, and each pod template as a core Pod."""
    if obj.get("apiVersion") != "kubeflow.org/v1" or obj.get("kind") != "PyTorchJob":
        raise AssertionError(f"not a kubeflow.org/v1 PyTorchJob: {obj.get('apiVersion')} {obj.get('kind')}")
    validate_crd(obj, PYTORCHJOB, strict=strict)
    for role, replica in obj["spec"]["pytorchReplicaSpecs"].items():
        tmpl = replica["template"]
        validate_core(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {**tmpl.get("metadata", {}), "name": f"pod-{role.lower()}"},
                "spec": tmpl["spec"],
            }
        )


@cache
def _katib_definitions(strict: bool) -> dict[str, Any]:
    swagger = json.loads((CRDS / KATIB_SWAGGER).read_text())
    defs: dict[str, Any] = swagger["definitions"]
    # Definitions the swagger refers to but does not hold (core types, unstructured): accept anything there.
    text = json.dumps(defs)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "#/definitions/')[1:]}:
        defs.setdefault(ref, {})
    return _strict(defs) if strict else defs


def validate_katib(obj: dict[str, Any], definition: str = "v1beta1.Experiment", *, strict: bool = True) -> None:
    """A Katib object against the v0.19.0 swagger definitions (``$ref`` resolved within them)."""
    if obj.get("apiVersion") != "kubeflow.org/v1beta1":
        raise AssertionError(f"not kubeflow.org/v1beta1: {obj.get('apiVersion')}")
    defs = _katib_definitions(strict)
    schema = {**copy.deepcopy(defs[definition]), "definitions": defs}
    _check_metadata(obj, definition)
    _raise(definition, _errors(jsonschema.Draft4Validator(schema), obj))


def validate_core(obj: dict[str, Any], version: str = K8S_VERSION) -> None:
    """A core Kubernetes object (Pod, Service, RBAC, ...) with kubernetes-validate in strict mode."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        raise AssertionError(f"{obj.get('kind')} is invalid at {path or '<root>'}: {err.message}") from None
