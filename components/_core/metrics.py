"""Turning a result's flat metadata into metric values (KFP ``Metrics`` take numbers only)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def numeric(values: Mapping[str, Any]) -> dict[str, float]:
    """The finite int/float entries of ``values`` as floats (booleans, text and NaN/inf left out)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
