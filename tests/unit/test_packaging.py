"""The catalog's top-level package names are not shadowed by any installed distribution."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import catalog
import components
import pipelines

ROOT = Path(__file__).resolve().parents[2]
OURS = {"components", "pipelines", "catalog", "bench"}


def test_no_installed_distribution_ships_our_top_level_names() -> None:
    clashes = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name == "kfp-component-catalog":
            continue
        top = set((dist.read_text("top_level.txt") or "").split())
        top |= {f.parts[0] for f in dist.files or [] if len(f.parts) > 1 and f.parts[0] in OURS}
        if top & OURS:
            clashes[name] = sorted(top & OURS)
    assert clashes == {}


def test_imports_resolve_to_this_repository() -> None:
    for module in (components, pipelines, catalog):
        assert Path(module.__file__ or "").resolve().is_relative_to(ROOT)
