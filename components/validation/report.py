"""A Markdown summary of a validation run, rendered by the KFP UI (a Markdown artifact)."""

from __future__ import annotations

from typing import Any

from components.validation.validate import REASONS, ROW, ValidationOutcome

SAMPLE_ROWS = 10
TOP_REASONS = 20
_CELL_CHARS = 80


def _cell(value: Any) -> str:
    if value is None:
        text = ""
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    text = text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 3] + "..."


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _top(stats: dict[str, Any]) -> str:
    top = stats.get("top") or []
    return ", ".join(f"{t['value']} ({t['count']})" for t in top[:5])


def render_report(outcome: ValidationOutcome, stats: dict[str, dict[str, Any]], *,
                  max_quarantine_share: float, title: str = "Data validation",
                  sample_rows: int = SAMPLE_ROWS, contract: str | None = "declared") -> str:
    """Counts, the quarantine share against its threshold (PASS/FAIL), where the contract came from, top
    reasons, per-column statistics of the valid rows and up to ``sample_rows`` quarantined rows.

    ``contract`` describes the contract applied; None means there was none, and the verdict says UNCHECKED.
    """
    share = outcome.quarantine_share
    passed = share <= max_quarantine_share
    relation = "<=" if passed else ">"
    verdict = (f"**{'PASS' if passed else 'FAIL'}**: quarantine share {share:.2%} {relation} threshold "
               f"{max_quarantine_share:.2%} ({outcome.rows_quarantined} of {outcome.rows_in} rows quarantined)")
    if contract is None:
        verdict = (f"**UNCHECKED**: no contract and no reference, so no row rules were applied; all "
                   f"{outcome.rows_in} rows passed through as valid (give `contract` or connect `reference`)")
    lines = [
        f"# {title}",
        "",
        verdict,
        "",
        f"Contract: {contract or 'none'}",
        "",
        *_table(["rows in", "rows valid", "rows quarantined", "quarantine share", "threshold"],
                [[outcome.rows_in, outcome.rows_valid, outcome.rows_quarantined, f"{share:.4f}",
                  f"{max_quarantine_share:.4f}"]]),
        "",
        "## Top reasons",
        "",
    ]
    reasons = sorted(outcome.reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    if reasons:
        lines += _table(["column:rule", "rows", "share of input"],
                        [[k, n, f"{n / outcome.rows_in:.4f}"] for k, n in reasons])
    else:
        lines.append("No rows were quarantined.")
    lines += ["", f"## Valid rows: per-column statistics ({outcome.rows_valid} rows)", ""]
    lines += _table(
        ["column", "dtype", "nulls", "null share", "unique", "min", "max", "mean", "std", "p50",
         "top values"],
        [[name, s.get("dtype"), s.get("nulls"), f"{s.get('null_share', 0.0):.4f}", s.get("n_unique"),
          s.get("min"), s.get("max"), s.get("mean"), s.get("std"), s.get("p50"), _top(s)]
         for name, s in stats.items()])
    lines += ["", f"## Sample quarantined rows (up to {sample_rows})", ""]
    sample = outcome.quarantine.head(sample_rows)
    if sample.height:
        columns = [ROW, REASONS, *[c for c in sample.columns if c not in (ROW, REASONS)]]
        lines += _table(columns, [["null" if v is None else v for v in r]
                                  for r in sample.select(columns).iter_rows()])
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def reasons_summary(reason_counts: dict[str, int], limit: int = 5) -> str:
    """The most frequent reasons as ``'key (n), ...'``."""
    top = sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return ", ".join(f"{k} ({n})" for k, n in top) or "none"


__all__ = ["reasons_summary", "render_report"]
