"""The fast Arrow -> online-row converter builds exactly what Feast's converter builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from components.features.convert import arrow_rows


def view(fields: dict[str, Any], created: bool = False) -> Any:
    from feast import Entity, FeatureView, Field, FileSource, ValueType

    entity = Entity(name="e", join_keys=["id"], value_type=ValueType.INT64)
    source = FileSource(name="s", path="/x.parquet", timestamp_field="ts",
                        created_timestamp_column="created" if created else "")
    return FeatureView(name="v", entities=[entity], source=source, ttl=timedelta(days=1),
                       schema=[Field(name=n, dtype=t) for n, t in fields.items()])


def normalized(rows: list[tuple]) -> list[tuple]:
    def utc(ts: datetime | None) -> datetime | None:
        return None if ts is None else (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC))
    return [(k.SerializeToString(), {n: v.SerializeToString() for n, v in sorted(f.items())}, utc(ts), utc(c))
            for k, f, ts, c in rows]


T = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.mark.parametrize("created", [False, True])
def test_scalar_columns_match_feast_value_for_value(created: bool) -> None:
    from feast.types import Bool, Bytes, Float32, Float64, Int32, Int64, String
    from feast.utils import _convert_arrow_to_proto
    from feast.value_type import ValueType

    fv = view({"i32": Int32, "i64": Int64, "f32": Float32, "f64": Float64, "s": String, "b": Bool, "raw": Bytes},
              created)
    n = 6
    data = {
        "id": pa.array([1, 2, 3, 2**40, -5, 0], pa.int64()),
        "ts": pa.array([T + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "i32": pa.array([0, 1, -7, 2**31 - 1, 5, 6], pa.int32()),
        "i64": pa.array([0, 2**62, -1, 3, 4, 5], pa.int64()),
        "f32": pa.array([0.0, 1.5, float("nan"), None, -2.25, 3.0], pa.float32()),
        "f64": pa.array([0.0, 1e-300, float("nan"), None, -2.5, 7.125], pa.float64()),
        "s": pa.array(["", "ä", None, "x" * 100, "a,b", "0"], pa.string()),
        "b": pa.array([True, False, None, True, False, True], pa.bool_()),
        "raw": pa.array([b"", b"\x00\x01", None, b"x", b"y", b"z"], pa.binary()),
    }
    if created:
        data["created"] = pa.array([T + timedelta(days=i) for i in range(n)], pa.timestamp("ns", tz="UTC"))
    batch = pa.RecordBatch.from_pydict(data)
    keys = {"id": ValueType.INT64}
    ours, theirs = arrow_rows(batch, fv, keys), _convert_arrow_to_proto(batch, fv, keys)
    assert normalized(ours) == normalized(theirs)
    assert all(ts.tzinfo is not None for _, _, ts, _ in ours)


def test_null_integers_become_empty_values_and_naive_timestamps_read_as_utc() -> None:
    from feast.types import Int64
    from feast.value_type import ValueType

    batch = pa.RecordBatch.from_pydict({"id": pa.array([1, 2], pa.int64()), "ts": pa.array([T, T], pa.timestamp("us")),
                                        "x": pa.array([None, 4], pa.int64())})
    rows = arrow_rows(batch, view({"x": Int64}), {"id": ValueType.INT64})
    assert [r[1]["x"].WhichOneof("val") for r in rows] == [None, "int64_val"]
    assert rows[0][2] == T


def test_other_types_fall_back_to_feast() -> None:
    from feast.types import Array, Float64, Int64
    from feast.value_type import ValueType

    batch = pa.RecordBatch.from_pydict({"id": pa.array([1], pa.int64()), "ts": pa.array([T]),
                                        "v": pa.array([[1.0, 2.0]], pa.list_(pa.float64())), "n": pa.array([3])})
    rows = arrow_rows(batch, view({"v": Array(Float64), "n": Int64}), {"id": ValueType.INT64})
    assert list(rows[0][1]["v"].double_list_val.val) == [1.0, 2.0] and rows[0][1]["n"].int64_val == 3
