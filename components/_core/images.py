"""Container image references, tied to the package version so a compiled component names an exact image.

One image per runtime family, built by ``images/Dockerfile`` with ``FAMILY=<family>``. Releases push
``{REGISTRY}/{family}:{version}``; a release may pin digests in ``images/digests.json`` which then win.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

from components import __version__

REGISTRY = "ghcr.io/kfp-component-catalog"
Family = Literal["base", "spark", "torch", "serving"]
FAMILIES: tuple[Family, ...] = ("base", "spark", "torch", "serving")
_DIGESTS = Path(__file__).resolve().parents[2] / "images" / "digests.json"


@cache
def _digests() -> dict[str, str]:
    return json.loads(_DIGESTS.read_text()) if _DIGESTS.exists() else {}


def image(family: Family) -> str:
    """Exact image reference for a runtime family: by digest when one is pinned, else by version tag."""
    if family not in FAMILIES:
        raise ValueError(f"unknown image family {family!r}; choose one of {FAMILIES}")
    digest = _digests().get(family)
    base = f"{REGISTRY}/{family}"
    return f"{base}@{digest}" if digest else f"{base}:{__version__}"
