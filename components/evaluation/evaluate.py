"""One evaluation: the candidate (and the champion, when there is one) scored on the candidate's held-out rows,
metrics, slices, calibration, the ROC curve, the bootstrap comparison and the gate's decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from components.evaluation.bootstrap import Interval
from components.evaluation.config import EvaluationConfig
from components.evaluation.errors import ChampionError
from components.evaluation.gate import Check, Decision, compare, decide, threshold_checks
from components.evaluation.heldout import SPLIT_KEYS, HeldOut, heldout_rows
from components.evaluation.metrics import (
    Curve,
    all_metrics,
    calibration_table,
    confusion,
    roc_points,
)
from components.evaluation.scoring import Scored, load_card_and_model, score
from components.evaluation.slices import SliceReport, slice_metrics


@dataclass(frozen=True)
class Evaluation:
    """Everything the blessing, the report and the KFP outputs are made of."""

    config: EvaluationConfig
    threshold: float
    heldout: HeldOut
    candidate: Scored
    candidate_metrics: dict[str, float | None]
    champion: Scored | None
    champion_metrics: dict[str, float | None] | None
    interval: Interval | None
    decision: Decision
    slices: SliceReport | None
    curve: Curve
    confusion: list[list[int]]
    calibration: list[dict[str, Any]]
    notes: list[str]

    @property
    def blessed(self) -> bool:
        return self.decision.blessed


def _champion_notes(candidate: dict[str, Any], champion: dict[str, Any]) -> list[str]:
    """Caveats when the champion was trained on other data or another split: it may have seen held-out rows."""
    def split(card: dict[str, Any]) -> list[Any]:
        return [(card.get("trainer_config") or {}).get(k) for k in SPLIT_KEYS]

    if split(champion) == split(candidate) and champion.get("data_uri") == candidate.get("data_uri"):
        return []
    return ["The champion was trained on other data or another split (its card's data_uri, seed or fractions "
            "differ from the candidate's, or are unknown), so some held-out rows may have been in its training "
            "data: that tends to flatter the champion, so the comparison errs against the candidate."]


def evaluate(table: pl.DataFrame, candidate_uri: str, champion_uri: str | None,
             cfg: EvaluationConfig) -> Evaluation:
    """Score the candidate on its held-out split of ``table`` (its training set), compare with the champion on
    the same rows when ``champion_uri`` is given, and decide."""
    model, card = load_card_and_model("candidate", candidate_uri)
    held = heldout_rows(table, card)
    candidate = score("candidate", candidate_uri, held.rows, (model, card))
    t = cfg.decision_threshold if cfg.decision_threshold is not None else float(card.get("threshold", 0.5))
    bins = cfg.calibration_bins
    cand_metrics = all_metrics(held.y, candidate.proba, t, bins)
    checks = threshold_checks(cand_metrics, cfg.thresholds, len(held.y))
    champion = champ_metrics = interval = None
    notes: list[str] = []
    if champion_uri:
        loaded = load_card_and_model("champion", champion_uri)
        label, theirs = card.get("label_column"), loaded[1].get("label_column")
        if theirs != label:
            raise ChampionError(f"champion model at {champion_uri!r} predicts {theirs!r}, the candidate "
                                f"{label!r}: they cannot be compared on the same labels")
        champion = score("champion", champion_uri, held.rows, loaded)
        champ_metrics = all_metrics(held.y, champion.proba, t, bins)
        interval, check = compare(held.y, candidate.proba, champion.proba, cfg.comparison, t, bins)
        checks.append(check)
        notes += _champion_notes(card, champion.card)
    else:
        checks.append(Check("champion", True, "no champion (first deployment): judged on the absolute thresholds "
                                              "alone"))
    return Evaluation(
        config=cfg, threshold=t, heldout=held, candidate=candidate, candidate_metrics=cand_metrics, champion=champion,
        champion_metrics=champ_metrics, interval=interval, decision=decide(checks),
        slices=slice_metrics(held.rows, held.y, candidate.proba, cfg.slices, t, bins),
        curve=roc_points(held.y, candidate.proba, cfg.roc_points), confusion=confusion(held.y, candidate.proba, t),
        calibration=calibration_table(held.y, candidate.proba, bins), notes=notes,
    )
