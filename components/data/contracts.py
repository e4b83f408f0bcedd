"""Contracts of the demo data sets, written against the generators' documented columns.

Clean generated data passes them; every defect ``generate_events`` injects (``BAD_KINDS``) breaks one rule.
"""

from __future__ import annotations

from components.data.events import CHANNELS, COUNTRIES, DEVICES
from components.validation.contract import ColumnRule, Contract

_KEYS = ["entity_id", "event_timestamp"]
# scikit-learn's breast_cancer feature names, snake-cased as components.data.breast_cancer does (listed here
# so building the contract does not load scikit-learn; a test checks them against the data set).
_BREAST_CANCER_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                           "concave_points", "symmetry", "fractal_dimension")
BREAST_CANCER_FEATURES: tuple[str, ...] = (
    *(f"mean_{m}" for m in _BREAST_CANCER_MEASURES),
    *(f"{m}_error" for m in _BREAST_CANCER_MEASURES),
    *(f"worst_{m}" for m in _BREAST_CANCER_MEASURES),
)


def _event_timestamp() -> ColumnRule:
    return ColumnRule(name="event_timestamp", dtype="datetime", time_zone="UTC",
                      min="2020-01-01T00:00:00+00:00", max="2030-01-01T00:00:00+00:00")


def demo_events_contract() -> Contract:
    """The contract of :func:`components.data.events.generate_events` tables."""
    return Contract(
        columns=[
            ColumnRule(name="entity_id", dtype="int", min=1),
            _event_timestamp(),
            ColumnRule(name="amount", dtype="float", min=0),
            ColumnRule(name="n_items", dtype="int", min=1),
            ColumnRule(name="session_minutes", dtype="float", finite=True, min=0),
            ColumnRule(name="account_age_days", dtype="int", min=0),
            ColumnRule(name="country", dtype="string", allowed=list(COUNTRIES)),
            ColumnRule(name="channel", dtype="string", allowed=list(CHANNELS)),
            ColumnRule(name="device", dtype="string", allowed=list(DEVICES)),
            ColumnRule(name="label", dtype="int", min=0, max=1),
        ],
        unique_keys=list(_KEYS),
    )


def breast_cancer_contract() -> Contract:
    """The contract of :func:`components.data.breast_cancer.breast_cancer_events` tables (30 non-negative,
    finite measurements)."""
    return Contract(
        columns=[
            ColumnRule(name="entity_id", dtype="int", min=1),
            _event_timestamp(),
            *(ColumnRule(name=f, dtype="float", min=0) for f in BREAST_CANCER_FEATURES),
            ColumnRule(name="label", dtype="int", min=0, max=1),
        ],
        unique_keys=list(_KEYS),
    )
