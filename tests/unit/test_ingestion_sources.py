"""``open_table``: compressed files found by suffix or content, plain copies in input order, Parquet footers and
schema agreement, clear errors naming the file."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from components._core.artifacts import ArtifactError, compression_of, data_files, format_of
from components.ingestion.sources import open_table

EVENTS = pl.DataFrame({"id": [1, 2, 3], "name": ["a", "b,c", "d\ne"]})


def write_zstd(path: Path, data: bytes) -> None:
    """With the ``zstd`` tool when the machine has it, else pyarrow's codec."""
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-f", "-o", str(path)], input=data, check=True)
    else:
        with pa.CompressedOutputStream(str(path), "zstd") as fh:
            fh.write(data)


@pytest.mark.parametrize(("name", "compression", "fmt"), [
    ("events.csv.gz", "gzip", "csv"), ("events.csv", "gzip", "csv"), ("events.jsonl.zst", "zstd", "jsonl"),
    ("events.jsonl", "zstd", "jsonl"), ("events.ndjson.zstd", "zstd", "jsonl"), ("events.csv.gzip", "gzip", "csv")])
def test_compressed_sources_are_read_as_plain_files(tmp_path: Path, name: str, compression: str, fmt: str) -> None:
    data = (EVENTS.write_csv() if fmt == "csv" else EVENTS.write_ndjson()).encode()
    path = tmp_path / name
    if compression == "gzip":
        path.write_bytes(gzip.compress(data))
    else:
        write_zstd(path, data)
    table = open_table(str(path), scratch=str(tmp_path / "scratch"))
    assert table.format == fmt and table.rows == 3 and table.sources[0].notes == (compression,)
    assert table.files[0].startswith(str(tmp_path / "scratch")) and Path(table.files[0]).read_bytes() == data
    assert table.scan().collect().equals(EVENTS)


def test_compression_by_suffix_and_by_content(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("file")
    (tmp_path / "plain.csv").write_text("a\n1\n")
    (tmp_path / "packed").write_bytes(gzip.compress(b"a\n1\n"))
    assert compression_of(str(tmp_path / "x.csv.zst")) == "zstd"
    assert compression_of(str(tmp_path / "plain.csv"), fs) is None
    assert compression_of(str(tmp_path / "packed"), fs) == "gzip"
    assert format_of("a/b/events.csv.gz") == "csv" and format_of("events.jsonl.zstd") == "jsonl"


def test_suffixless_compressed_file_needs_a_declared_format(tmp_path: Path) -> None:
    path = tmp_path / "artifact"  # KFP artifact paths have no suffix
    path.write_bytes(gzip.compress(EVENTS.write_csv().encode()))
    with pytest.raises(ArtifactError, match=r"cannot infer the format of gzip-compressed file .*artifact'.*declare"):
        open_table(str(path), scratch=str(tmp_path))
    assert open_table(str(path), "csv", scratch=str(tmp_path)).scan().collect().equals(EVENTS)


def test_folder_mixing_plain_and_compressed_parts_keeps_input_order(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    parts = [EVENTS.slice(i, 1) for i in range(3)]
    parts[0].write_csv(folder / "part-0.csv")
    (folder / "part-1.csv.gz").write_bytes(gzip.compress(parts[1].write_csv().encode()))
    parts[2].write_csv(folder / "part-2.csv")
    assert data_files(str(folder))[1] == "csv" and len(data_files(str(folder))[0]) == 3
    table = open_table(str(folder), scratch=str(tmp_path / "scratch"))
    assert [Path(f).name for f in table.files] == ["00000-part-0.csv", "00001-part-1.csv", "00002-part-2.csv"]
    assert os.path.islink(table.files[0]) and not os.path.islink(table.files[1])  # plain parts are linked
    assert sorted(table.files) == table.files and table.scan().collect().equals(EVENTS)
    assert [s.uri for s in table.sources] == [str(folder / n) for n in ("part-0.csv", "part-1.csv.gz", "part-2.csv")]


def test_plain_utf8_files_are_read_in_place(tmp_path: Path) -> None:
    EVENTS.write_csv(tmp_path / "e.csv")
    table = open_table(str(tmp_path / "e.csv"), scratch=str(tmp_path / "scratch"))
    assert table.files == [str(tmp_path / "e.csv")] and table.multiline  # "d\ne" is quoted
    assert [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()] == []  # nothing was copied


def test_parquet_rows_come_from_the_footers(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    EVENTS.write_parquet(folder / "a.parquet", compression="gzip")  # compressed columns are normal Parquet
    EVENTS.head(2).write_parquet(folder / "b.parquet", compression="zstd")
    table = open_table(str(folder), scratch=str(tmp_path))
    assert [s.rows for s in table.sources] == [3, 2] and table.files == [str(folder / "a.parquet"),
                                                                         str(folder / "b.parquet")]


@pytest.mark.parametrize(("other", "message"), [
    (EVENTS.with_columns(pl.col("id").cast(pl.String)),
     r"b\.parquet: column 'id' is large_string, but int64 in .*a\.parquet"),
    (EVENTS.drop("name"), r"b\.parquet lacks column 'name' that .*a\.parquet has"),
    (EVENTS.with_columns(extra=pl.lit(1)), r"b\.parquet has column 'extra' that .*a\.parquet lacks"),
    (EVENTS.select("name", "id"), r"b\.parquet: columns in another order"),
])
def test_parquet_folder_whose_files_disagree_names_file_and_column(tmp_path: Path, other: pl.DataFrame,
                                                                   message: str) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    EVENTS.write_parquet(folder / "a.parquet")
    other.write_parquet(folder / "b.parquet")
    with pytest.raises(ArtifactError, match=message):
        open_table(str(folder), scratch=str(tmp_path))


def test_csv_folder_whose_headers_disagree_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    EVENTS.write_csv(folder / "a.csv")
    EVENTS.rename({"name": "label"}).write_csv(folder / "b.csv")
    with pytest.raises(ArtifactError, match=r"csv file .*b\.csv has the header \['id', 'label'\], but .*a\.csv"):
        open_table(str(folder), scratch=str(tmp_path))
