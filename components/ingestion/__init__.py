"""Ingestion: read CSV / Parquet / JSON lines, apply declared transforms, write Parquet (duckdb, polars or Spark).

What every engine does with its input (``sources`` resolves it once, ``textfiles`` checks the bytes):

* Compressed files (gzip, zstd; found by suffix or by their first bytes, also under a plain ``.csv`` /
  ``.jsonl`` name) are decompressed once into the step's scratch folder; a compressed file without a format
  suffix needs ``format``. Parquet column compression needs nothing.
* Text is UTF-8 unless ``encoding`` says otherwise (latin-1, cp1252, utf-16 ...); a byte-order mark decides by
  itself. Other encodings are transcoded once; bytes invalid in the encoding reject the file, naming the line.
* CSV follows RFC 4180. Blank lines are skipped and counted (``blank_lines_skipped``). A short or long row, a
  quote inside an unquoted field, an unclosed quote or a duplicate column name rejects the file, naming the
  file and the line (or column): malformed rows never reach validation half-read. CRLF, LF and mixed line
  endings read alike. A header-only file is zero rows with its columns.
* JSON lines: blank lines are skipped and counted; malformed JSON rejects the file, naming it and the line.
* Parquet: a folder whose files disagree on columns or types is refused, naming the file and the column.
* Casts convert by the one rule of ``components._core.casts`` (lossless; datetimes microsecond UTC).
* Row account (``account``): the rows in the files (counted from the bytes or Parquet footers), the rows the
  engine's parser returned, each transform's rows in and out and the rows written are in the output metadata;
  a count the transforms do not explain is a ``RowAccountError`` and nothing is written.
"""

from components.ingestion.account import RowAccountError
from components.ingestion.config import IngestConfig
from components.ingestion.ingest import IngestResult, run_ingest
from components.ingestion.transforms import CastError, IngestError, Transform, TransformError

__all__ = [
    "CastError", "IngestConfig", "IngestError", "IngestResult", "RowAccountError", "Transform", "TransformError",
    "run_ingest",
]
