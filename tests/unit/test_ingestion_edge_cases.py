"""One behaviour per edge case, whatever the engine: each case is a small file (committed under
``tests/data/ingestion`` or written here by other tools) with the rows every engine must write, or the error it
must raise. ``tests/integration/test_ingestion_spark.py`` runs the same cases with Spark.

Also: the cast rule on a table of tricky values, engine against engine and against the rule itself.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from components._core import casts
from components._core.artifacts import ArtifactError, read_table
from components.ingestion import run_ingest

DATA = Path(__file__).resolve().parents[1] / "data" / "ingestion"
ENGINES = ["duckdb", "polars"]
PEOPLE = pd.DataFrame({"id": [1, 2, 3], "name": ["Ann", "Zoë, Jr.", 'say "hi"\nbye']})
PEOPLE_ROWS = PEOPLE.to_dict("records")


@dataclass(frozen=True)
class Case:
    """A source file, the config it is read with, and what every engine does with it."""

    file: str  # under tests/data/ingestion, or written by ``write_tool_files``
    rows: list[dict[str, Any]] | None = None  # the rows written, in file order
    error: tuple[type[Exception], str] | None = None  # or the error and a regex its message matches
    config: dict[str, Any] = field(default_factory=dict)
    blank_lines: int = 0
    converted: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    "crlf line endings, quoted newline, comma and quotes": Case("crlf_quoted.csv", rows=[
        {"id": 1, "name": "Smith, J", "note": "line one\nline two"}, {"id": 2, "name": "plain", "note": 'say "hi"'},
        {"id": 3, "name": None, "note": None}]),
    "blank lines are skipped and counted": Case("blank_lines.csv", blank_lines=3, rows=[
        {"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        converted=("blank lines", "mixed line ends")),
    "records ending in \\r\\n and \\n": Case("mixed_line_ends.csv", converted=("mixed line ends",), rows=[
        {"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]),
    "blank json lines are skipped and counted": Case("blank_lines.jsonl", blank_lines=2, rows=[
        {"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
    "malformed json line": Case("bad_json.jsonl", error=(ArtifactError, r"bad_json\.jsonl, line 3")),
    "header only": Case("header_only.csv", rows=[]),
    "no final newline": Case("no_final_newline.csv", rows=[{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
    "short row": Case("short_row.csv", error=(ArtifactError, r"short_row\.csv, line 3: short row")),
    "long row": Case("long_row.csv", error=(ArtifactError, r"long_row\.csv, line 3: long row")),
    "duplicate column": Case("duplicate_header.csv", error=(ArtifactError, "duplicate column name 'id'")),
    "latin-1 undeclared": Case("latin1.csv", error=(ArtifactError, r"latin1\.csv, line 2: not valid UTF-8")),
    "latin-1 declared": Case("latin1.csv", config={"encoding": "latin-1"}, converted=("iso8859-1",), rows=[
        {"id": 1, "city": "Köln"}, {"id": 2, "city": "München"}]),
    "quote inside an unquoted field": Case("stray_quote.csv", error=(
        ArtifactError, r"stray_quote\.csv, line 2: a quote inside a field that is not quoted")),
    "pandas utf-16 (BOM)": Case("pandas_utf16.csv", rows=PEOPLE_ROWS, converted=("utf-16",)),
    "gzip named .csv": Case("gzip_named.csv", rows=PEOPLE_ROWS, converted=("gzip",)),
    "gzip with suffix": Case("people.csv.gz", rows=PEOPLE_ROWS, converted=("gzip",)),
    "zstd json lines": Case("people.jsonl.zst", rows=PEOPLE_ROWS, converted=("zstd",)),
    "suffix-less gzip, format declared": Case("gzip_artifact", rows=PEOPLE_ROWS, config={"format": "csv"},
                                              converted=("gzip",)),
    "suffix-less gzip, format not declared": Case("gzip_artifact", error=(
        ArtifactError, "cannot infer the format of gzip-compressed file")),
}


def write_tool_files(folder: Path) -> None:
    """The binary cases, written by the tools people use: pandas, Python's gzip module, pyarrow's zstd."""
    PEOPLE.to_csv(folder / "pandas_utf16.csv", encoding="utf-16", index=False)
    csv_bytes = PEOPLE.to_csv(index=False).encode()
    (folder / "gzip_named.csv").write_bytes(gzip.compress(csv_bytes))
    (folder / "gzip_artifact").write_bytes(gzip.compress(csv_bytes))
    with gzip.open(folder / "people.csv.gz", "wb") as fh:
        fh.write(csv_bytes)
    with pa.CompressedOutputStream(str(folder / "people.jsonl.zst"), "zstd") as out:
        out.write(PEOPLE.to_json(orient="records", lines=True).encode())


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    for f in DATA.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    write_tool_files(folder)
    return folder


def run_case(case: Case, sources: Path, out: Path, engine: str, spark: Any = None) -> None:
    """Ingest the case with ``engine`` and check the rows and the row account, or the error."""
    config = {"data_version": "t", "engine": engine, **case.config}
    if case.error:
        with pytest.raises(case.error[0], match=case.error[1]):
            run_ingest(str(sources / case.file), str(out), config, spark=spark)
        assert not out.exists()
        return
    result = run_ingest(str(sources / case.file), str(out), config, spark=spark)
    assert case.rows is not None
    assert read_table(str(out)).to_dicts() == case.rows
    meta = result.to_metadata()
    account = json.loads(meta["row_account"])
    assert (meta["rows_read"], meta["rows_in"], meta["rows_out"]) == (len(case.rows),) * 3
    assert meta["blank_lines_skipped"] == case.blank_lines
    assert account["converted"] == ({str(sources / case.file): list(case.converted)} if case.converted else {})


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(CASES))
def test_edge_case(sources: Path, tmp_path: Path, engine: str, name: str) -> None:
    run_case(CASES[name], sources, tmp_path / "out.parquet", engine)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_joined_table_has_its_own_encoding(sources: Path, tmp_path: Path, engine: str) -> None:
    (tmp_path / "ids.csv").write_text("id,label\n1,x\n2,y\n")
    join = {"op": "join", "uri": str(sources / "latin1.csv"), "on": ["id"], "encoding": "latin-1"}
    run_ingest(str(tmp_path / "ids.csv"), str(tmp_path / "out.parquet"),
               {"data_version": "t", "engine": engine, "transforms": [join]})
    assert read_table(str(tmp_path / "out.parquet")).sort("id")["city"].to_list() == ["Köln", "München"]


# --- the cast rule on tricky values ------------------------------------------------------------------

TEXTS = [" 1.0 ", "1e3", "1.5", "-0", "+7", "inf", "-inf", "NaN", "yes", "No", "T", "1", "0", "2", "",
         "2026-01-02", "2026-01-02T03:04Z", "2026-01-02 03:04:05.123456+02:00", "2026-01-02t03:04:05",
         "2026-01-02 03:04", "2026-02-30", "2026-1-2", "1767225600", "9223372036854775807", "9223372036854775808",
         "1_000", "0x10", None]
NUMBERS = [0.0, 1.0, -0.0, 1.5, float("inf"), float("nan"), 86_400.0, 1e300, -1.0, 1_767_225_600.5, None]
TRICKY = pl.DataFrame({
    "s": TEXTS,
    "x": NUMBERS + [2.0] * (len(TEXTS) - len(NUMBERS)),
    "i": pl.Series([0, 1, -1, 2, 86_400, None, 1_767_225_600] + [3] * (len(TEXTS) - 7), dtype=pl.Int64),
    "t": pl.Series([datetime(2026, 1, 2), datetime(2026, 1, 2, 3, 4, 5, 6), None] * (len(TEXTS) // 3)
                   + [datetime(1970, 1, 1)] * (len(TEXTS) % 3)).dt.replace_time_zone("UTC"),
    "d": [date(2026, 1, 2), None] * (len(TEXTS) // 2) + [date(2000, 2, 29)] * (len(TEXTS) % 2),
})
TARGETS = ["int64", "float64", "string", "bool", "datetime", "date"]


def cast_all(src: str, out: Path, engine: str, spark: Any = None) -> tuple[pl.DataFrame, dict[str, int]]:
    """Every column of TRICKY cast to every target (on_error null) by one engine."""
    derive = [{"op": "derive", "name": f"{c}_{to}", "sql": c} for c in TRICKY.columns for to in TARGETS]
    cast = {"op": "cast", "on_error": "null", "columns": {f"{c}_{to}": to for c in TRICKY.columns for to in TARGETS}}
    result = run_ingest(src, str(out), {"data_version": "t", "engine": engine, "transforms": [*derive, cast]},
                        spark=spark)
    assert result.engine == engine
    return read_table(str(out)), result.cast_failures


def by_the_rule() -> pl.DataFrame:
    """TRICKY converted by ``casts.cast`` directly."""
    return TRICKY.select(pl.all(), *(casts.cast(pl.col(c), TRICKY.schema[c], to, time_zone="UTC").alias(f"{c}_{to}")
                                     for c in TRICKY.columns for to in TARGETS))


def test_cast_rule_pins_the_tricky_values() -> None:
    rule = by_the_rule()
    row = dict(zip(TEXTS, rule.select("s_int64", "s_float64", "s_bool", "s_datetime", "s_date").rows(),
                   strict=True))
    assert row[" 1.0 "][0] == 1 and row["1e3"][0] == 1000 and row["1.5"][0] is None and row["-0"][0] == 0
    assert row["inf"][0] is None and row["inf"][1] == float("inf") and row["1_000"][1] is None
    assert [row[w][2] for w in ("yes", "No", "T", "1", "0", "2")] == [True, False, True, True, False, None]
    assert row["2026-01-02T03:04Z"][3] == datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    assert row["2026-01-02 03:04:05.123456+02:00"][3] == datetime(2026, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)
    assert row["2026-01-02"][4] == date(2026, 1, 2) and row["2026-01-02 03:04"][4] is None
    assert row["9223372036854775808"][0] is None and row["9223372036854775807"][0] == 2**63 - 1
    numbers = dict(zip(range(len(NUMBERS)), rule.select("x_int64", "x_bool", "x_datetime").rows(), strict=False))
    assert numbers[1] == (1, True, datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) and numbers[3][:2] == (None, None)
    assert numbers[9][2] == datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert rule["t_date"].to_list()[:3] == [date(2026, 1, 2), None, None]  # a date only at midnight


@pytest.mark.parametrize("engine", ENGINES)
def test_cast_rule_is_the_same_in_every_engine(tmp_path: Path, engine: str) -> None:
    src = tmp_path / "tricky.parquet"
    TRICKY.write_parquet(src)
    got, failures = cast_all(str(src), tmp_path / "out.parquet", engine)
    expected = by_the_rule()
    assert_frame_equal(got, expected, check_exact=True)
    assert failures == {f"{c}_{to}": int(TRICKY.select(casts.failed(pl.col(c), TRICKY.schema[c], to,
                                                                    time_zone="UTC").sum()).item())
                        for c in TRICKY.columns for to in TARGETS}
