"""Pipelines composed from the catalog's components (composition only, no logic)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

# name -> "module:factory"; a factory takes a Target and returns a compiled-able pipeline.
PIPELINES: dict[str, str] = {
    "training": "pipelines.training:make_pipeline",
    "monitoring": "pipelines.monitoring:make_pipeline",
}


def factory(name: str) -> Callable[..., Any]:
    """The pipeline factory registered under ``name``."""
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; available: {sorted(PIPELINES)}")
    module, attr = PIPELINES[name].split(":")
    return getattr(import_module(module), attr)
