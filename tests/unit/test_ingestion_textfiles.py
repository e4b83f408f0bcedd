"""The byte-level pass over text sources: record counts against Python's csv module, blank lines, structure
errors with their line, encodings and compression, and the plain copy it writes."""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

import pyarrow as pa
import pytest

from components._core.artifacts import ArtifactError
from components.ingestion import textfiles
from components.ingestion.textfiles import count_text

DATA = Path(__file__).resolve().parents[1] / "data" / "ingestion"


def csv_text(rows: list[list[str]], newline: str = "\n") -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=newline).writerows(rows)
    return buf.getvalue()


def random_rows(seed: int, n: int = 300) -> list[list[str]]:
    """Fields with commas, quotes, both kinds of line break and non-ASCII text; the first row is the header."""
    rng = random.Random(seed)
    pieces = ["a", "b", ",", '"', "\n", "\r\n", " ", "ü", "€", "1", "x,y", '""']
    return [["id", "text", "more"]] + [
        [str(i), "".join(rng.choice(pieces) for _ in range(rng.randrange(6))), rng.choice(["", "z", "q,\n"])]
        for i in range(n)]


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 24])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_csv_record_count_matches_pythons_csv_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int,
                                                     chunk: int) -> None:
    monkeypatch.setattr(textfiles, "CHUNK", chunk)  # records cross chunk borders
    rows = random_rows(seed)
    path = tmp_path / "r.csv"
    path.write_bytes(csv_text(rows, "\r\n" if seed == 2 else "\n").encode())
    count = count_text(str(path), "csv")
    with open(path, newline="", encoding="utf-8") as fh:
        assert count.records == len(list(csv.reader(fh))) - 1 == len(rows) - 1
    assert count.columns == ["id", "text", "more"] and count.blank_lines == 0 and count.quoted_newlines


@pytest.mark.parametrize("chunk", [2, 5, 1 << 24])
def test_blank_lines_are_counted_and_left_out_of_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          chunk: int) -> None:
    monkeypatch.setattr(textfiles, "CHUNK", chunk)
    out = tmp_path / "plain.csv"
    count = count_text(str(DATA / "blank_lines.csv"), "csv", out_path=str(out))
    assert (count.records, count.blank_lines) == (3, 3)
    assert out.read_bytes() == b"id,name\n1,a\n2,b\n3,c\n"  # and records end in \n


def test_blank_line_inside_a_quoted_field_is_data(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b'id,note\n1,"two\n\nparagraphs"\n\n2,x\n')
    count = count_text(str(path), "csv")
    assert (count.records, count.blank_lines, count.quoted_newlines) == (2, 1, True)


@pytest.mark.parametrize(("name", "records"), [("crlf_quoted.csv", 3), ("header_only.csv", 0),
                                               ("no_final_newline.csv", 2)])
def test_fixture_counts(name: str, records: int) -> None:
    assert count_text(str(DATA / name), "csv").records == records


@pytest.mark.parametrize(("name", "message"), [
    ("short_row.csv", r"short_row\.csv, line 3: short row with 2 field\(s\), the header has 3"),
    ("long_row.csv", r"long_row\.csv, line 3: long row with 3 field\(s\), the header has 2"),
    ("duplicate_header.csv", r"duplicate_header\.csv: duplicate column name 'id'"),
    ("latin1.csv", r"latin1\.csv, line 2: not valid UTF-8; set the config's encoding"),
])
@pytest.mark.parametrize("chunk", [4, 1 << 24])
def test_malformed_text_names_file_and_line(monkeypatch: pytest.MonkeyPatch, name: str, message: str,
                                            chunk: int) -> None:
    monkeypatch.setattr(textfiles, "CHUNK", chunk)
    with pytest.raises(ArtifactError, match=f"malformed csv file .*{message}"):
        count_text(str(DATA / name), "csv")


def test_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_bytes(b'a,b\n1,"x\ny\nz"\n2,w\n3\n')
    with pytest.raises(ArtifactError, match=r"line 6: short row"):
        count_text(str(path), "csv")


def test_unclosed_quote_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "open.csv"
    path.write_bytes(b'a,b\n1,x\n2,"never closed\n3,y\n')
    with pytest.raises(ArtifactError, match=r"open\.csv, line 3: a quoted field is not closed"):
        count_text(str(path), "csv")


def test_empty_csv_is_refused(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(b"\n\n")
    with pytest.raises(ArtifactError, match="is empty: a CSV file needs a header line"):
        count_text(str(tmp_path / "e.csv"), "csv")


def test_json_lines_skip_blank_and_whitespace_lines() -> None:
    count = count_text(str(DATA / "blank_lines.jsonl"), "jsonl")
    assert (count.records, count.blank_lines) == (2, 2)


@pytest.mark.parametrize(("encoding", "bom"), [("utf-16", True), ("utf-16-le", False), ("latin-1", False),
                                               ("cp1252", False), ("utf-8-sig", True)])
def test_encodings_are_transcoded_to_utf8(tmp_path: Path, encoding: str, bom: bool) -> None:
    text = csv_text([["id", "city"], ["1", "Köln"], ["2", "Zürich, CH"]])
    path, out = tmp_path / "in.csv", tmp_path / "out.csv"
    path.write_bytes(text.encode(encoding))
    declared = "utf-8" if bom else encoding  # a byte-order mark decides by itself
    count = count_text(str(path), "csv", encoding=declared, out_path=str(out))
    assert out.read_bytes() == text.encode("utf-8") and count.records == 2
    assert count.columns == ["id", "city"]


def test_invalid_bytes_in_a_declared_encoding_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes("id\n1\n".encode("utf-16-le") + b"\x00\xd8")  # a lone surrogate
    with pytest.raises(ArtifactError, match=r"odd\.csv: not valid utf-16-le"):
        count_text(str(path), "csv", encoding="utf-16-le")


@pytest.mark.parametrize("kind", ["gzip", "gzip-multi-member", "zstd"])
def test_compressed_files_are_decompressed(tmp_path: Path, kind: str) -> None:
    text = csv_text(random_rows(5, 2000)).encode()
    path, out = tmp_path / "data.csv", tmp_path / "plain.csv"  # a compressed file with a plain name
    if kind == "zstd":
        with pa.CompressedOutputStream(str(path), "zstd") as fh:
            fh.write(text)
    elif kind == "gzip":
        path.write_bytes(gzip.compress(text))
    else:  # `cat a.gz b.gz`
        path.write_bytes(gzip.compress(text[:1000]) + gzip.compress(text[1000:]))
    count = count_text(str(path), "csv", compression=kind.split("-")[0], out_path=str(out))
    assert out.read_bytes() == text and count.records == 2000 and count.notes == [kind.split("-")[0]]


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"a\n" + b"1\n" * 10_000)[:-20])
    with pytest.raises(ArtifactError, match=r"cannot read gzip data .*cut\.csv\.gz"):
        count_text(str(path), "csv", compression="gzip")


def test_quotes_follow_rfc_4180(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_bytes(b'id,h,z\n1,"5\' 11""",\n2,"a""b",\n3,"",""\n4,"x\r\ny",\n')
    assert count_text(str(good), "csv").records == 4
    for n, body in enumerate([b'1,ab"c\n', b'1, "x"\n', b'1,"x"y\n']):
        bad = tmp_path / f"bad{n}.csv"
        bad.write_bytes(b"id,v\n0,ok\n" + body)
        with pytest.raises(ArtifactError, match=rf"bad{n}\.csv, line 3: a quote inside a field that is not quoted"):
            count_text(str(bad), "csv")
