"""Reading and writing datasets, JSON and text at local paths or ``gs://`` / ``s3://`` URIs (fsspec).

Writes are atomic: data goes to a temporary sibling first and is moved into place only when complete, so a
failed step never leaves a half-written artifact behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

import fsspec
import polars as pl
import pyarrow.parquet as pq

TableFormat = Literal["auto", "csv", "parquet", "jsonl"]
_SUFFIX_FORMAT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".json": "jsonl"}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


class ArtifactError(ValueError):
    """An artifact location is missing, empty, unreadable or of an unknown format."""


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and the path within it for a local path, ``file://``, ``gs://`` or ``s3://`` URI."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def is_local(uri: str) -> bool:
    """True for plain paths and ``file://`` URIs."""
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> str:
    """Plain local path of a local URI."""
    return uri[len("file://"):] if uri.startswith("file://") else uri


def _data_suffix(path: str) -> str:
    """The format suffix of a file name, behind a compression suffix if any (``a.csv.gz`` -> ``.csv``)."""
    name = Path(path)
    if name.suffix.lower() in COMPRESSION_SUFFIXES:
        name = Path(name.stem)
    return name.suffix.lower()


def compression_of(path: str, fs: fsspec.AbstractFileSystem | None = None) -> str | None:
    """``gzip`` or ``zstd`` from the name's suffix, else from the file's first bytes (when ``fs`` is given);
    None for an uncompressed file. A compressed file named ``.csv`` is recognised by its magic bytes."""
    suffix = Path(path).suffix.lower()
    if suffix in COMPRESSION_SUFFIXES:
        return COMPRESSION_SUFFIXES[suffix]
    if fs is None or not fs.isfile(path):
        return None
    with fs.open(path, "rb") as fh:
        head = fh.read(4)
    return next((kind for magic, kind in COMPRESSION_MAGIC.items() if head.startswith(magic)), None)


def format_of(path: str, declared: TableFormat = "auto", fs: fsspec.AbstractFileSystem | None = None) -> str:
    """The table format of ``path``: the declared one, else from the suffix (behind ``.gz`` / ``.zst``), else
    sniffed (Parquet magic).

    KFP artifact paths carry no suffix, so a suffix-less Parquet file is recognised by its ``PAR1`` header.
    """
    if declared != "auto":
        return declared
    suffix = _data_suffix(path)
    if suffix in _SUFFIX_FORMAT:
        return _SUFFIX_FORMAT[suffix]
    compressed = compression_of(path, fs)
    if fs is not None and not suffix and not compressed and fs.isfile(path):
        with fs.open(path, "rb") as fh:
            if fh.read(4) == b"PAR1":
                return "parquet"
    what = f"{compressed}-compressed file" if compressed else "file"
    raise ArtifactError(f"cannot infer the format of {what} {path!r}: use one of {sorted(_SUFFIX_FORMAT)} "
                        "(optionally followed by .gz / .zst) or declare the format")


def data_files(uri: str, declared: TableFormat = "auto") -> tuple[list[str], str]:
    """Data files under ``uri`` (a file or a folder, hidden and ``_``-prefixed files skipped) and their format.

    Returned paths keep the URI's scheme so polars and pyspark can read them directly.
    """
    fs, path = filesystem(uri)
    if not fs.exists(path):
        raise ArtifactError(f"source not found: {uri}")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if not Path(p).name.startswith((".", "_")))
        if declared == "auto":
            files = [p for p in files if _data_suffix(p) in _SUFFIX_FORMAT or not Path(p).suffix
                     or Path(p).suffix.lower() in COMPRESSION_SUFFIXES]
        if not files:
            raise ArtifactError(f"folder {uri} holds no data files")
        formats = {format_of(p, declared, fs) for p in files}
        if len(formats) > 1:
            raise ArtifactError(f"folder {uri} mixes formats {sorted(formats)}; declare one")
        return [prefix + p for p in files], formats.pop()
    return [prefix + path], format_of(path, declared, fs)


def scan_table(uri: str, declared: TableFormat = "auto", infer_rows: int = 10_000) -> pl.LazyFrame:
    """Lazily scan a CSV / Parquet / JSON-lines file or folder.

    Local files stream through polars' scanners; remote files are read through fsspec (gcsfs / s3fs), the
    same credentials path that writes use.
    """
    files, fmt = data_files(uri, declared)
    if all(is_local(f) for f in files):
        paths = [local_path(f) for f in files]
        if fmt == "parquet":
            return pl.scan_parquet(paths)
        if fmt == "csv":
            return pl.scan_csv(paths, infer_schema_length=infer_rows, try_parse_dates=False)
        return pl.scan_ndjson(paths, infer_schema_length=infer_rows)
    frames = []
    for f in files:
        fs, path = filesystem(f)
        with fs.open(path, "rb") as fh:
            if fmt == "parquet":
                frames.append(pl.read_parquet(fh))
            elif fmt == "csv":
                frames.append(pl.read_csv(fh, infer_schema_length=infer_rows))
            else:
                frames.append(pl.read_ndjson(fh, infer_schema_length=infer_rows))
    return pl.concat(frames, how="vertical_relaxed").lazy()


def read_table(uri: str, declared: TableFormat = "auto") -> pl.DataFrame:
    """Read a whole table; errors name the file and the cause."""
    try:
        return scan_table(uri, declared).collect()
    except ArtifactError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError) as err:
        raise ArtifactError(f"cannot read {uri}: {type(err).__name__}: {str(err).splitlines()[0]}") from None


@contextmanager
def atomic_target(uri: str) -> Iterator[str]:
    """Yield a temporary path or URI to write; move it to ``uri`` only if the block succeeds.

    The temporary lives in its own hidden sibling folder that is removed afterwards, so even a writer that
    creates its file late (polars' streaming sink can) leaves nothing behind.
    """
    fs, path = filesystem(uri)
    path = path.rstrip("/")
    parent, name = os.path.dirname(path), os.path.basename(path)
    staging = f"{parent}/.tmp-{uuid.uuid4().hex}"
    fs.makedirs(staging, exist_ok=True)
    tmp = f"{staging}/{name}"
    target = tmp if is_local(uri) else f"{uri.split('://')[0]}://{tmp}"
    try:
        yield target
        if not fs.exists(tmp):
            raise ArtifactError(f"writer produced nothing for {uri}")
        if fs.exists(path):
            fs.rm(path, recursive=True)
        fs.mv(tmp, path, recursive=True)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)


def write_parquet(df: pl.DataFrame | pl.LazyFrame, uri: str) -> int:
    """Write a table as one Parquet file atomically; returns the row count written."""
    with atomic_target(uri) as tmp:
        if is_local(tmp):
            if isinstance(df, pl.LazyFrame):
                df.sink_parquet(local_path(tmp))
            else:
                df.write_parquet(local_path(tmp))
        else:
            fs, path = filesystem(tmp)
            with fs.open(path, "wb") as fh:
                (df.collect() if isinstance(df, pl.LazyFrame) else df).write_parquet(fh)
    return parquet_rows(uri)


def parquet_rows(uri: str) -> int:
    """Row count of a Parquet file or folder from its metadata (no data read)."""
    files, _ = data_files(uri, "parquet")
    total = 0
    for f in files:
        fs, path = filesystem(f)
        with fs.open(path, "rb") as fh:
            total += pq.ParquetFile(fh).metadata.num_rows
    return total


@contextmanager
def open_atomic(uri: str, mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """Open ``uri`` for writing; the file appears only when the block succeeds."""
    with atomic_target(uri) as tmp:
        fs, path = filesystem(tmp)
        with fs.open(path, mode) as fh:
            yield fh


def write_json(obj: Any, uri: str) -> None:
    """Write canonical, indented JSON atomically."""
    with open_atomic(uri) as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def read_json(uri: str) -> Any:
    """Read a JSON document."""
    fs, path = filesystem(uri)
    with fs.open(path, "r") as fh:
        return json.load(fh)


def write_text(text: str, uri: str) -> None:
    """Write text atomically."""
    with open_atomic(uri) as fh:
        fh.write(text)


def shared_uri(path: str, uri: str = "", *, who: str = "cluster jobs") -> str:
    """Where ``who`` (pods that cannot see this step's files) read an artifact: its URI (``minio://`` read as
    ``s3://``: MinIO speaks S3), else ``path`` when that is remote; ``ArtifactError`` when only a local file exists."""
    found = uri or path
    if found.startswith("minio://"):
        found = "s3://" + found[len("minio://"):]
    if is_local(found):
        raise ArtifactError(f"{who} cannot read the step's local file {found}; run the pipeline with a gs:// or "
                            "s3:// pipeline root")
    return found
