"""The row account: every row read from the files is written, or removed by a declared transform and counted.

Independent counts come from the files (``sources.Table.rows``: bytes or Parquet footers). An engine reports
the rows its parser returned per table, the rows out of each transform that changes counts (filter, dedupe,
join, aggregate; select, rename, cast and derive keep them) unless only count-keeping transforms follow it, and
the rows written. ``settle`` checks that they add up and raises ``RowAccountError`` naming where they do not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.ingestion.sources import Table
from components.ingestion.transforms import Aggregate, Dedupe, Filter, IngestError, Join, Transform

SOURCE = "source"
COUNT_CHANGING = (Filter, Dedupe, Join, Aggregate)


class RowAccountError(IngestError):
    """Rows went missing (or appeared) where no declared transform explains it."""


def joined(index: int) -> str:
    """The account's key of the table joined by transform ``index``."""
    return f"join #{index}"


def changes_count(t: Transform) -> bool:
    """Whether a transform may change the row count."""
    return isinstance(t, COUNT_CHANGING)


def counted_stages(transforms: Sequence[Transform]) -> list[int]:
    """Indices of the transforms an engine must count the output of: those that change counts, except one
    followed only by count-keeping transforms (its output is the rows written)."""
    changing = [i for i, t in enumerate(transforms) if changes_count(t)]
    return changing[:-1] if changing else []


@dataclass(frozen=True)
class EngineRun:
    """What an engine reports back: rows its parser returned per table (``SOURCE``, ``joined(i)``), rows out
    of the transforms ``counted_stages`` names, rows written, output dtypes, per-column cast failures and,
    when it is not the one configured (the duckdb engine can hand a chain to polars), the engine that ran."""

    parsed: dict[str, int]
    stage_rows: dict[int, int]
    rows_out: int
    columns: dict[str, str]
    cast_failures: dict[str, int]
    engine: str | None = None

    @property
    def rows_in(self) -> int:
        return self.parsed[SOURCE]


@dataclass(frozen=True)
class StageRows:
    """Rows into and out of one transform; ``counted``: measured by the engine, not implied by its op."""

    index: int
    op: str
    rows_in: int
    rows_out: int
    counted: bool


@dataclass(frozen=True)
class RowAccount:
    """Where every row went."""

    files: dict[str, int]  # source file -> records counted from the file
    blank_lines: int  # blank lines skipped (declared: counted, never parsed as rows)
    converted: dict[str, list[str]]  # source file -> what was undone to read it (gzip, utf-16, blank lines)
    rows_parsed: int  # rows the engine's parser returned for the source
    joined: dict[str, int]  # joined table -> rows parsed (equal to its files' records)
    stages: list[StageRows]
    rows_out: int

    def to_metadata(self) -> dict[str, Any]:
        """Flat values for artifact metadata (the details as one sorted JSON string)."""
        detail = {"files": self.files, "converted": self.converted, "joined": self.joined,
                  "transforms": [vars(s) for s in self.stages], "rows_parsed": self.rows_parsed,
                  "rows_out": self.rows_out}
        return {"rows_read": sum(self.files.values()), "blank_lines_skipped": self.blank_lines,
                "row_account": json.dumps(detail, sort_keys=True)}


def _check_parsed(name: str, table: Table, parsed: int, engine: str,
                  count_files: Callable[[Table], Mapping[str, int]]) -> None:
    if parsed == table.rows:
        return
    by_file = count_files(table) if len(table.sources) > 1 else {table.files[0]: parsed}
    for s in table.sources:
        got = by_file.get(s.path, 0)
        if got != s.rows:
            raise RowAccountError(f"the {engine} engine read {got} rows from {s.uri} ({name}), but the file holds "
                                  f"{s.rows} records")
    raise RowAccountError(f"the {engine} engine read {parsed} rows from {table.uri} ({name}), but its files hold "
                          f"{table.rows} records")


Settle = Callable[["EngineRun"], RowAccount]  # what an engine calls before it commits its output


def settle(source: Table, tables: Mapping[int, Table], transforms: Sequence[Transform], run: EngineRun,
           engine: str, count_files: Callable[[Table], Mapping[str, int]]) -> RowAccount:
    """Check an engine's counts against the files and the transforms; ``count_files`` (per-file parsed rows of
    a table) is called only to name the file when a table's total is off."""
    parsed, stage_rows, rows_out = run.parsed, run.stage_rows, run.rows_out
    _check_parsed(SOURCE, source, parsed[SOURCE], engine, count_files)
    for i, table in tables.items():
        _check_parsed(joined(i), table, parsed[joined(i)], engine, count_files)
    stages, rows = [], parsed[SOURCE]
    last = max((i for i, t in enumerate(transforms) if changes_count(t)), default=None)
    for i, t in enumerate(transforms):
        if i in stage_rows:
            out, counted = stage_rows[i], True
        elif i == last:
            out, counted = rows_out, True  # only count-keeping transforms follow: its rows are the rows written
        elif changes_count(t):
            raise RowAccountError(f"the {engine} engine did not count the rows out of transform #{i} ({t.op})")
        else:
            out, counted = rows, False
        stages.append(StageRows(i, t.op, rows, out, counted))
        rows = out
    if rows != rows_out:
        where = f"transform #{stages[-1].index} ({stages[-1].op}) left" if stages else "the parser read"
        raise RowAccountError(f"row account does not add up: {where} {rows} rows, but {rows_out} were written")
    return RowAccount(files={s.uri: s.rows for s in source.sources}, blank_lines=source.blank_lines,
                      converted={s.uri: list(s.notes) for s in source.sources if s.notes},
                      rows_parsed=parsed[SOURCE], joined={joined(i): parsed[joined(i)] for i in tables},
                      stages=stages, rows_out=rows_out)
