"""Polars engine: lazy scan -> transforms -> streaming ``sink_parquet``, in one pass with the cast checks and
the row counts (``collect_all`` runs them together; a counted stage is a ``cache`` node, so its count and the
rest of the chain share one computation of it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from components._core.artifacts import atomic_target, filesystem, is_local, local_path
from components.ingestion.account import SOURCE, EngineRun, RowAccount, Settle, counted_stages, joined
from components.ingestion.casting import cast_expr, failed_expr, raise_cast_failures
from components.ingestion.sources import READ_ERRORS, Table, diagnose, scan_files
from components.ingestion.transforms import (
    JOIN_SUFFIX,
    Aggregate,
    Cast,
    Dedupe,
    Derive,
    Filter,
    Join,
    Rename,
    Select,
    Transform,
    TransformError,
)

ROW = "__ingest_row"  # hidden input position, kept while a later dedupe may need it


def _agg_expr(fn: str, column: str | None, name: str) -> pl.Expr:
    if column is None:
        return pl.len().cast(pl.Int64).alias(name)
    col = pl.col(column)
    exprs = {"sum": col.sum(), "mean": col.mean(), "min": col.min(), "max": col.max(),
             "count": col.count().cast(pl.Int64), "n_unique": col.drop_nulls().n_unique().cast(pl.Int64)}
    return exprs[fn].alias(name)


def apply(lf: pl.LazyFrame, t: Transform, schema: pl.Schema, right: Table | None = None) -> pl.LazyFrame:
    """One transform on a lazy frame whose current schema is ``schema`` (``ROW`` is kept while present)."""
    hidden = [ROW] if ROW in schema else []
    if isinstance(t, Select):
        return lf.select(*t.columns, *hidden)
    if isinstance(t, Rename):
        return lf.rename(t.mapping)
    if isinstance(t, Cast):
        return lf.with_columns(cast_expr(c, schema[c], to).alias(c) for c, to in t.columns.items())
    if isinstance(t, Derive):
        return lf.with_columns(pl.sql_expr(t.sql).alias(t.name))
    if isinstance(t, Filter):
        return lf.filter(pl.sql_expr(t.sql))
    if isinstance(t, Dedupe):
        order = [*(t.order_by or []), *hidden]
        if order:
            lf = lf.sort(order, nulls_last=False, maintain_order=True)
        return lf.unique(subset=t.keys, keep=t.keep, maintain_order=True)
    if isinstance(t, Join):
        assert right is not None
        other = right.scan()
        clash = {c: f"{c}{JOIN_SUFFIX}" for c in right.schema.names() if c not in t.on and c in schema}
        return lf.join(other.rename(clash), on=t.on, how=t.how, coalesce=True)
    assert isinstance(t, Aggregate)
    return lf.group_by(t.by).agg(_agg_expr(a.fn, a.column, a.name) for a in t.aggs)


def _failure_query(lf: pl.LazyFrame, t: Cast, schema: pl.Schema) -> pl.LazyFrame:
    """Per cast column: how many non-null values failed, and the first such value (as text)."""
    exprs = []
    for c, to in t.columns.items():
        bad = failed_expr(c, schema[c], to)
        exprs += [bad.sum().cast(pl.Int64).alias(f"n:{c}"), pl.col(c).filter(bad).first().cast(pl.String)
                  .alias(f"ex:{c}")]
    return lf.select(exprs)


@dataclass
class Plan:
    """The output plan, per cast a query counting its failures, and the row-count queries by account key
    (``SOURCE``, ``joined(i)``, or a transform's index)."""

    output: pl.LazyFrame
    checks: list[tuple[int, Cast, pl.LazyFrame]]
    counts: dict[str | int, pl.LazyFrame]


def build(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table]) -> Plan:
    """The plan of the chain; type errors name the transform."""
    lf = source.scan()
    if source.format != "parquet":  # the parser's own count, from the one parse (Parquet: the footers)
        lf = lf.cache()
    counts: dict[str | int, pl.LazyFrame] = {SOURCE: lf.select(pl.len())}
    counts.update({joined(i): t.scan().select(pl.len()) for i, t in tables.items()})
    if any(isinstance(t, Dedupe) for t in transforms):  # first / last follow input order, as in Spark
        lf = lf.with_row_index(ROW)
    schema, checks, wanted = lf.collect_schema(), [], set(counted_stages(transforms))
    for i, t in enumerate(transforms):
        if isinstance(t, Cast):
            checks.append((i, t, _failure_query(lf, t, schema)))
        lf = apply(lf, t, schema, tables.get(i))
        try:
            schema = lf.collect_schema()
        except READ_ERRORS as err:
            raise TransformError(i, t.op, str(err).splitlines()[0]) from None
        if i in wanted:  # a cache node: the count and the rest of the chain share one computation of it
            lf = lf.cache()
            counts[i] = lf.select(pl.len())
    return Plan(lf.drop(ROW) if ROW in schema else lf, checks, counts)


def count_files(table: Table) -> dict[str, int]:
    """Rows polars reads from each file of a table alone (names the file when a table's total is off)."""
    return {f: int(scan_files([f], table.format, table.schema).select(pl.len()).collect().item())
            for f in table.files}


def run(source: Table, transforms: Sequence[Transform], tables: Mapping[int, Table], output_uri: str,
        settle: Settle) -> tuple[EngineRun, RowAccount]:
    """Execute the chain and write one Parquet file at ``output_uri``; it appears only when the row account
    (``settle``) adds up."""
    plan = build(source, transforms, tables)
    failures: dict[str, int] = {}
    keys = list(plan.counts)
    with atomic_target(output_uri) as tmp, tempfile.TemporaryDirectory(prefix="ingest-") as scratch:
        target = local_path(tmp) if is_local(tmp) else os.path.join(scratch, "out.parquet")
        try:  # one pass: the sink, the cast checks and the row counts share the scan
            results = pl.collect_all([plan.output.sink_parquet(target, lazy=True),
                                      *(q for _, _, q in plan.checks), *plan.counts.values()])[1:]
        except READ_ERRORS as err:
            raise diagnose(err, [source, *tables.values()]) from None
        for (i, t, _), res in zip(plan.checks, results, strict=False):
            row = res.row(0, named=True)
            counts = {c: int(row[f"n:{c}"] or 0) for c in t.columns}
            raise_cast_failures(i, t, counts, {c: row[f"ex:{c}"] for c in t.columns})
            for c, n in counts.items():
                failures[c] = failures.get(c, 0) + n
        rows = {k: int(res.item()) for k, res in zip(keys, results[len(plan.checks):], strict=True)}
        written = pl.scan_parquet(target)
        rows_out = int(written.select(pl.len()).collect().item())
        columns = {k: str(v) for k, v in written.collect_schema().items()}
        result = EngineRun(parsed={k: n for k, n in rows.items() if isinstance(k, str)},
                           stage_rows={k: n for k, n in rows.items() if isinstance(k, int)},
                           rows_out=rows_out, columns=columns, cast_failures=failures)
        account = settle(result)
        if not is_local(tmp):
            fs, path = filesystem(tmp)
            fs.put(target, path)
    return result, account
