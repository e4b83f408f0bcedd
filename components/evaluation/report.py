"""The evaluation's Markdown report, rendered from the blessing document so the two always agree."""

from __future__ import annotations

from typing import Any

from components.evaluation.metrics import NAMES

LINEAGE_SHOWN = ("uri", "weights_sha256", "data_uri", "data_version", "training_set_sha256", "package_version",
                 "image")


def _num(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_num(v) for v in row) + " |" for row in rows]
    return [*out, ""]


def _metrics(doc: dict[str, Any]) -> list[str]:
    cand = doc["candidate"]["metrics"]
    champ = (doc["champion"] or {}).get("metrics")
    header = ["metric", "candidate"] + (["champion", "candidate - champion"] if champ else [])
    rows = []
    for name in NAMES:
        row = [name, cand[name]]
        if champ:
            both = cand[name] is not None and champ[name] is not None
            row += [champ[name], cand[name] - champ[name] if both else None]
        rows.append(row)
    return ["## Metrics on the held-out rows", "", *_table(header, rows)]


def _comparison(doc: dict[str, Any]) -> list[str]:
    c = doc["comparison"]
    if c is None:
        return ["## Champion", "", "No champion: first deployment, judged on the absolute thresholds alone.", ""]
    champ = doc["champion"]["lineage"]
    return ["## Comparison with the champion", "",
            f"Champion: `{champ['uri']}`. Metric `{c['metric']}` ({'higher' if c['higher_is_better'] else 'lower'} "
            f"is better), tolerance {c['tolerance']:g}.", "",
            f"Difference (candidate - champion): **{c['difference']:+.4f}**, {c['confidence'] * 100:g}% interval "
            f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] from {c['resamples']} {c['bootstrap']} (seed {c['seed']}).",
            ""]


def _slices(doc: dict[str, Any]) -> list[str]:
    s = doc["slices"]
    if s is None:
        return []
    out = [f"## Slices by `{s['column']}`", "",
           *_table(["value", "rows", "positives", *NAMES],
                   [[r["value"], r["rows"], r["positives"], *(r[n] for n in NAMES)] for r in s["evaluated"]])]
    if s["skipped"]:
        listed = ", ".join(f"`{r['value']}` ({r['rows']})" for r in s["skipped"])
        out += [f"Skipped (fewer than {s['min_rows']} rows): {listed}.", ""]
    return out


def _lineage(doc: dict[str, Any]) -> list[str]:
    rows = []
    for role in ("candidate", "champion"):
        if doc[role] is not None:
            lin = doc[role]["lineage"]
            rows += [[role, key, f"`{lin[key]}`"] for key in LINEAGE_SHOWN if key in lin]
    return ["## Lineage", "", *_table(["model", "field", "value"], rows)]


def render(doc: dict[str, Any]) -> str:
    """Markdown of a blessing document."""
    held, cm = doc["heldout"], doc["confusion_matrix"]
    lines = [f"# Evaluation: {'BLESSED' if doc['blessed'] else 'NOT BLESSED'}", "",
             *(f"- {'PASS' if c['passed'] else 'FAIL'}: {c['reason']}" for c in doc["checks"]), "",
             f"Rule: {doc['rule']}.", "",
             "## Held-out rows", "",
             f"{held['rows']} rows ({held['positives']} positive) of {held['table_rows']}: {held['description']} "
             f"(label `{held['label_column']}`, seed {held['seed']}, val_fraction {held['val_fraction']}, "
             f"test_fraction {held['test_fraction']}).", "",
             *_metrics(doc), *_comparison(doc),
             f"## Confusion matrix (predicted positive at p >= {cm['decision_threshold']:g})", "",
             *_table(["true \\ predicted", "0", "1"], [["0", *cm["matrix"][0]], ["1", *cm["matrix"][1]]]),
             "## Calibration", "", doc["calibration"]["binning"] + ".", "",
             *_table(["bin", "rows", "mean probability", "positive rate"],
                     [[f"[{b['low']:.2f}, {b['high']:.2f}{']' if b['high'] >= 1 else ')'}", b["rows"],
                       b["mean_predicted"], b["observed_rate"]] for b in doc["calibration"]["bins"]]),
             *_slices(doc), *_lineage(doc)]
    if doc["notes"]:
        lines += ["## Notes", "", *(f"- {n}" for n in doc["notes"]), ""]
    return "\n".join(lines).rstrip() + "\n"
