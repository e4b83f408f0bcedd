"""Importing feast cheaply: its run-time type checks applied on first call, torch imported only when asked for.

- Feast decorates its core classes (``FeatureView``, ``Entity``, ``FileSource``, ...) with typeguard's
  ``@typechecked``. typeguard 4 instruments each annotated method when the class is defined by parsing,
  transforming and compiling the method's *whole module* again, so ``import feast`` spends about 6 s on 2 cores
  in ``ast`` and ``compile`` (agronholm/typeguard#468; featurebyte patches the same decorator), once in every
  feature step's process. Here typeguard's ``instrument`` is made lazy: each method is instrumented the first
  time it is called, then the instrumented code runs as before, so the checks stay (a wrong argument type still
  raises ``TypeCheckError``) and only methods that are used pay for them.
- ``feast.torch_wrapper`` imports torch (~2.5 s) at import only to know whether it could; feast calls its
  ``get_torch()`` only when a user asks for tensors. It is replaced by a module whose ``get_torch()`` imports
  torch then, with feast's own error when torch is missing.

``install()`` must run before feast is imported; the feature package calls it on import.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Callable
from typing import Any

_INSTALLED = "_catalog_lazy_instrument"


def _not_instrumentable(f: Any) -> bool:
    """typeguard's own early refusals (it returns a reason without parsing anything)."""
    code = getattr(f, "__code__", None)
    return (code is None or not getattr(f, "__module__", None) or code.co_filename == "<stdin>"
            or hasattr(f, "__wrapped__"))


def lazy(instrument: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``instrument`` (typeguard's) deferred to each function's first call; the result is cached."""

    def lazy_instrument(f: Any) -> Any:
        if _not_instrumentable(f):
            return instrument(f)  # the reason string, as before
        real: list[Callable[..., Any]] = []

        def resolved() -> Callable[..., Any]:
            if not real:
                got = instrument(f)
                real.append(got if callable(got) else f)  # a reason: run unchecked, as typechecked would
            return real[0]

        if inspect.iscoroutinefunction(f):
            @functools.wraps(f)
            async def deferred_async(*args: Any, **kwargs: Any) -> Any:
                return await resolved()(*args, **kwargs)

            return deferred_async

        @functools.wraps(f)
        def deferred(*args: Any, **kwargs: Any) -> Any:
            return resolved()(*args, **kwargs)

        return deferred

    setattr(lazy_instrument, _INSTALLED, True)
    return lazy_instrument


def lazy_torch_wrapper() -> types.ModuleType:
    """A stand-in for ``feast.torch_wrapper`` that imports torch on the first ``get_torch()`` call."""
    module = types.ModuleType("feast.torch_wrapper", "feast's torch access, importing torch on first use")

    def get_torch() -> Any:
        """The torch module; ImportError (with the cause) when torch cannot be imported."""
        try:
            import torch
        except Exception as err:
            raise ImportError(f"Torch is not available or failed to import: {err}") from err
        return torch

    module.get_torch = get_torch  # type: ignore[attr-defined]
    setattr(module, _INSTALLED, True)
    return module


def install() -> bool:
    """Apply both (idempotent; nothing changes once feast is imported). False when typeguard is absent."""
    if "feast.torch_wrapper" not in sys.modules:
        sys.modules["feast.torch_wrapper"] = lazy_torch_wrapper()
    try:
        from typeguard import _decorators
    except ImportError:
        return False
    if not getattr(_decorators.instrument, _INSTALLED, False):
        _decorators.instrument = lazy(_decorators.instrument)  # type: ignore[assignment]
    return True
