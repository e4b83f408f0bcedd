"""The row account: what it records for every engine, and the errors when an engine's counts and the files'
counts do not add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from components.ingestion import run_ingest
from components.ingestion.account import SOURCE, EngineRun, RowAccountError, counted_stages, joined, settle
from components.ingestion.config import IngestConfig
from components.ingestion.sources import open_table

EVENTS = pl.DataFrame({"id": list(range(12)), "user": ["a", "b", "c", "a"] * 3, "amount": [1.0, 5.0, 9.0] * 4})
USERS = pl.DataFrame({"user": ["a", "b", "b"], "segment": ["x", "y", "z"]})  # "b" twice: the join adds rows
CHAIN: list[dict[str, Any]] = [
    {"op": "cast", "columns": {"amount": "int64"}},
    {"op": "filter", "sql": "amount > 1"},                      # 12 -> 8
    {"op": "derive", "name": "big", "sql": "amount > 5"},
    {"op": "join", "uri": "", "on": ["user"], "how": "inner"},  # "c" drops out, "b" rows double
    {"op": "dedupe", "keys": ["id", "segment"]},
    {"op": "aggregate", "by": ["segment"], "aggs": [{"name": "n", "fn": "count"}]},
    {"op": "filter", "sql": "n > 0"},
    {"op": "select", "columns": ["segment", "n"]},
]


def files(tmp_path: Path) -> tuple[str, str]:
    EVENTS.write_csv(tmp_path / "events.csv")
    USERS.write_parquet(tmp_path / "users.parquet")
    return str(tmp_path / "events.csv"), str(tmp_path / "users.parquet")


def expected_stages() -> list[tuple[int, int]]:
    """Rows in and out of each transform of CHAIN, computed with plain polars."""
    df = EVENTS.filter(pl.col("amount") > 1)
    joined_rows = df.join(USERS, on="user").unique(["id", "segment"])
    groups = joined_rows.group_by("segment").len().height
    after_filter = df.height
    return [(12, 12), (12, after_filter), (after_filter, after_filter), (after_filter, joined_rows.height),
            (joined_rows.height, joined_rows.height), (joined_rows.height, groups), (groups, groups), (groups, groups)]


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_every_transform_has_rows_in_and_out_in_the_metadata(tmp_path: Path, engine: str) -> None:
    src, users = files(tmp_path)
    chain = [{**t, "uri": users} if t["op"] == "join" else t for t in CHAIN]
    result = run_ingest(src, str(tmp_path / "out.parquet"), {"data_version": "t", "engine": engine,
                                                             "transforms": chain})
    meta = result.to_metadata()
    account = json.loads(meta["row_account"])
    assert result.engine == engine and meta["rows_read"] == 12 and account["rows_parsed"] == 12
    assert [(s["rows_in"], s["rows_out"]) for s in account["transforms"]] == expected_stages()
    assert [s["counted"] for s in account["transforms"]] == [False, True, False, True, True, True, True, False]
    assert account["files"] == {src: 12} and account["joined"] == {"join #3": 3}
    assert account["rows_out"] == meta["rows_out"] == pl.read_parquet(tmp_path / "out.parquet").height


def test_counted_stages_skip_the_last_count_changing_transform() -> None:
    cfg = IngestConfig.parse({"data_version": "t", "transforms": [
        {"op": "filter", "sql": "a > 1"}, {"op": "derive", "name": "b", "sql": "a"}, {"op": "dedupe", "keys": ["a"]},
        {"op": "select", "columns": ["a"]}]})
    assert counted_stages(cfg.transforms) == [0]


def run_of(parsed: int, stages: dict[int, int], rows_out: int, joined_rows: dict[str, int] | None = None) -> EngineRun:
    return EngineRun(parsed={SOURCE: parsed, **(joined_rows or {})}, stage_rows=stages, rows_out=rows_out,
                     columns={}, cast_failures={})


def test_a_parser_that_returns_fewer_rows_than_the_file_holds_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    EVENTS.head(5).write_csv(folder / "a.csv")
    EVENTS.tail(7).write_csv(folder / "b.csv")
    table = open_table(str(folder), scratch=str(tmp_path / "s"))
    cfg = IngestConfig.parse({"data_version": "t"})
    per_file = {table.files[0]: 5, table.files[1]: 3}  # as if the engine lost 4 rows of b.csv
    with pytest.raises(RowAccountError, match=r"the duckdb engine read 3 rows from .*b\.csv \(source\), but the "
                                              r"file holds 7 records"):
        settle(table, {}, cfg.transforms, run_of(8, {}, 8), "duckdb", lambda t: per_file)
    settle(table, {}, cfg.transforms, run_of(12, {}, 12), "duckdb", lambda t: pytest.fail("not needed"))


def test_joined_tables_are_checked_too(tmp_path: Path) -> None:
    src, users = files(tmp_path)
    table, right = open_table(src, scratch=str(tmp_path)), open_table(users, scratch=str(tmp_path))
    cfg = IngestConfig.parse({"data_version": "t", "transforms": [{"op": "join", "uri": users, "on": ["user"]}]})
    with pytest.raises(RowAccountError, match=r"read 2 rows from .*users\.parquet \(join #0\), but the file holds 3"):
        settle(table, {0: right}, cfg.transforms, run_of(12, {}, 10, {joined(0): 2}), "polars", lambda t: {})


def test_rows_the_transforms_do_not_explain_are_an_error(tmp_path: Path) -> None:
    src, _ = files(tmp_path)
    table = open_table(src, scratch=str(tmp_path))
    cfg = IngestConfig.parse({"data_version": "t", "transforms": [{"op": "derive", "name": "x", "sql": "id"}]})
    with pytest.raises(RowAccountError, match=r"transform #0 \(derive\) left 12 rows, but 11 were written"):
        settle(table, {}, cfg.transforms, run_of(12, {}, 11), "polars", lambda t: {})
    two = IngestConfig.parse({"data_version": "t", "transforms": [{"op": "filter", "sql": "id > 1"},
                                                                   {"op": "dedupe", "keys": ["id"]}]})
    with pytest.raises(RowAccountError, match=r"did not count the rows out of transform #0 \(filter\)"):
        settle(table, {}, two.transforms, run_of(12, {}, 10), "polars", lambda t: {})


def test_nothing_is_written_when_the_account_does_not_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check runs before the output is committed: a lost row leaves no dataset behind."""
    from components.ingestion import ingest

    src, _ = files(tmp_path)

    def losing(*args: Any, **kwargs: Any) -> Any:  # the engine's counts, with one row fewer written
        run = args[3]
        return settle(*args[:3], EngineRun(run.parsed, run.stage_rows, run.rows_out - 1, {}, {}), *args[4:])

    monkeypatch.setattr(ingest, "settle", losing)
    with pytest.raises(RowAccountError, match="but 11 were written"):
        run_ingest(src, str(tmp_path / "out.parquet"), {"data_version": "t"})
    assert not (tmp_path / "out.parquet").exists()
