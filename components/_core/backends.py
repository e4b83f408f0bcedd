"""The seam between local, Kubeflow and Vertex execution: one interface per capability, one class per backend.

Later families (training, tuning, serving) register an implementation per backend; a config value picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T", bound=type)


class Backend(StrEnum):
    """Where a launched workload runs."""

    LOCAL = "local"
    KUBEFLOW = "kubeflow"
    VERTEX = "vertex"


class BackendError(LookupError):
    """No implementation is registered for the requested capability and backend."""


_REGISTRY: dict[tuple[str, Backend], type] = {}


def register(capability: str, backend: Backend | str) -> Callable[[T], T]:
    """Class decorator registering ``cls`` as ``capability``'s implementation on ``backend``."""
    key = (capability, Backend(backend))

    def decorate(cls: T) -> T:
        existing = _REGISTRY.get(key)
        if existing is not None and existing is not cls:
            raise BackendError(f"{capability}/{key[1]} is already provided by {existing.__qualname__}")
        _REGISTRY[key] = cls
        return cls

    return decorate


def resolve(capability: str, backend: Backend | str) -> type:
    """The implementation class for ``capability`` on ``backend``; the error lists what is available."""
    try:
        key = (capability, Backend(backend))
    except ValueError:
        raise BackendError(f"unknown backend {backend!r}; choose one of {[b.value for b in Backend]}") from None
    if key not in _REGISTRY:
        have = sorted(b.value for (c, b) in _REGISTRY if c == capability)
        raise BackendError(f"no {capability!r} implementation for backend {backend!r}; available: {have}")
    return _REGISTRY[key]


def available(capability: str) -> list[str]:
    """Backends that implement ``capability``."""
    return sorted(b.value for (c, b) in _REGISTRY if c == capability)
