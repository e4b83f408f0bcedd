"""Pure helpers for Kubernetes manifests: canonical dicts, deterministic names, label values, spec hashes."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

MANAGED_BY = "kfp-component-catalog"
SPEC_HASH_ANNOTATION = "kfp-component-catalog.io/spec-hash"
RUN_ID_ANNOTATION = "kfp-component-catalog.io/run-id"
TASK_ANNOTATION = "kfp-component-catalog.io/task"
STEP_LABEL = "kfp-component-catalog.io/step"  # the deterministic name shared by every attempt of a step
ATTEMPT_LABEL = "kfp-component-catalog.io/attempt"
DNS1123_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def canonical(obj: Any) -> Any:
    """``obj`` with every dict's keys in sorted order (lists keep their order), so JSON dumps are stable."""
    if isinstance(obj, dict):
        return {k: canonical(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    return obj


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def deterministic_name(run_id: str, task: str, prefix: str = "", *, max_len: int = 53) -> str:
    """A DNS-1035/1123 label, the same for the same ``(run_id, task, prefix)`` and different otherwise.

    Readable part from ``prefix`` and ``task``, plus a 10-hex-character hash of all three; it starts with a
    letter (Services named after it must) and never holds uuids or times of its own. ``max_len`` leaves room
    for suffixes the controller adds (PyTorchJob pods ``-worker-NN``: 53; Katib trials: 40).
    """
    if not run_id or not task:
        raise ValueError("run_id and task are required for a deterministic name: in a pipeline pass "
                         "run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER and task=dsl.PIPELINE_TASK_NAME_PLACEHOLDER")
    if max_len < 16 or max_len > 63:
        raise ValueError(f"max_len must be within [16, 63], got {max_len}")
    digest = hashlib.sha256(f"{run_id}\0{task}\0{prefix}".encode()).hexdigest()[:10]
    readable = _slug("-".join(p for p in (prefix, task) if p)) or "job"
    if not readable[0].isalpha():
        readable = "j-" + readable
    readable = readable[: max_len - len(digest) - 1].rstrip("-")
    name = f"{readable}-{digest}"
    assert DNS1123_LABEL.match(name) and len(name) <= max_len, name
    return name


def label_value(text: str) -> str:
    """``text`` made a valid label value (≤63 chars, alphanumeric ends, ``-_.`` inside)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    value = re.sub(r"^[^A-Za-z0-9]+", "", value)
    value = re.sub(r"[^A-Za-z0-9]+$", "", value)
    assert _LABEL_VALUE.match(value), value
    return value


def spec_hash(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's ``apiVersion``, ``kind`` and ``spec`` (metadata and status excluded)."""
    core = {k: manifest.get(k) for k in ("apiVersion", "kind", "spec")}
    return hashlib.sha256(json.dumps(canonical(core), separators=(",", ":")).encode()).hexdigest()


def standard_metadata(
    name: str,
    namespace: str,
    *,
    run_id: str,
    task: str,
    component: str,
    extra_labels: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """``metadata`` shared by every manifest: name, namespace, managed-by labels, run and task annotations
    (when given)."""
    labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": label_value(component),
        "app.kubernetes.io/instance": name,
        **dict(extra_labels),
    }
    annotations = {k: v for k, v in ((RUN_ID_ANNOTATION, run_id), (TASK_ANNOTATION, task)) if v}
    meta: dict[str, Any] = {"labels": labels, "name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return meta
