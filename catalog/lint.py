"""Portability lint for compiled specs: what would break on a target or leak a secret fails the compile."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

SECRET_NAME = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|credential|private[_-]?key|access[_-]?key)",
                         re.IGNORECASE)
PINNED_IMAGE = re.compile(r"^[^\s@]+(:(?!latest$)[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$")
_IMAGE_HAS_TAG = re.compile(r"^(?:[^/]+/)*[^/:@]+(?::[^/@]+)?(?:@sha256:[0-9a-f]{64})?$")


def _images(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, executor in spec.get("deploymentSpec", {}).get("executors", {}).items():
        container = executor.get("container")
        if container:
            yield name, container.get("image", "")


def _parameters(spec: dict[str, Any]) -> Iterator[tuple[str, str]]:
    roots = [("pipeline", spec.get("root", {}))]
    roots += list(spec.get("components", {}).items())
    for owner, comp in roots:
        for name in comp.get("inputDefinitions", {}).get("parameters", {}):
            yield owner, name


def image_is_pinned(ref: str) -> bool:
    """True when ``ref`` names an explicit tag (not ``latest``) or a sha256 digest."""
    last = ref.rsplit("/", 1)[-1]
    return bool(PINNED_IMAGE.match(ref)) and (":" in last or "@sha256:" in ref)


def lint(documents: list[dict[str, Any]], target: str) -> list[str]:
    """Problems found in one compiled file (its YAML documents) for ``target``; empty when clean."""
    problems: list[str] = []
    spec = documents[0]
    if target == "vertex" and (len(documents) > 1 or any("platforms" in d for d in documents)):
        problems.append("vertex spec carries kfp-kubernetes platform config (Vertex accepts one document only)")
    for executor, ref in _images(spec):
        if not image_is_pinned(ref):
            problems.append(f"{executor}: image {ref!r} has no explicit tag or digest (or uses :latest)")
    for owner, name in _parameters(spec):
        if SECRET_NAME.search(name):
            problems.append(f"{owner}: parameter {name!r} looks like a secret; mount it from a secret store instead")
    return problems
