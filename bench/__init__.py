"""Benchmarks that compare a stage with its peers in one run: ``python -m bench NAME [args]``.

Add a benchmark with one line in ``BENCHMARKS``: ``"name": "module:function"``, where the function takes the
remaining command-line arguments (``list[str]``), prints its figures and ends with its ``ratio`` lines.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest:main",
    "features": "bench.features:main",
    "train": "bench.train:main",
    "tune": "bench.tune:main",
    "serve": "bench.serve:main",
    "pipeline": "bench.pipeline:main",
    "drift": "bench.drift:main",
}


def resolve(name: str) -> Callable[[Sequence[str]], object]:
    """The function registered under ``name``; ``KeyError`` lists the known names."""
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    module, func = BENCHMARKS[name].split(":")
    fn: Callable[[Sequence[str]], object] = getattr(importlib.import_module(module), func)
    return fn
