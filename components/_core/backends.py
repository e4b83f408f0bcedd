"""The seam between local, Kubeflow and Vertex execution: a ``Backend`` value picks one class from a family's
backend table (``{Backend: "module:Class"}``), imported only when chosen; nothing registers itself on import."""

from __future__ import annotations

from enum import StrEnum
from importlib import import_module
from typing import Any


class Backend(StrEnum):
    """Where a launched workload runs."""

    LOCAL = "local"
    KUBEFLOW = "kubeflow"
    VERTEX = "vertex"


class BackendError(LookupError):
    """No implementation exists for the requested capability and backend."""


def load_backend(table: dict[Backend, str], backend: Backend | str, capability: str) -> Any:
    """The class ``table`` names for ``backend``; the error lists the backends ``capability`` offers."""
    try:
        key = Backend(backend)
    except ValueError:
        raise BackendError(f"unknown backend {backend!r}; choose one of {[b.value for b in Backend]}") from None
    if key not in table:
        raise BackendError(f"no {capability!r} implementation for backend {key.value!r}; "
                           f"available: {sorted(b.value for b in table)}")
    module, _, attr = table[key].partition(":")
    return getattr(import_module(module), attr)
