"""Our byte encodings equal Feast's: entity keys (format 3) and serialized values with their value_text."""

from __future__ import annotations

import pyarrow as pa
import pytest

from components.features import encode

EDGE = {
    "INT64": pa.array([0, 1, -1, 127, 128, 2**63 - 1, -(2**63), None, 300], pa.int64()),
    "INT32": pa.array([0, 1, -1, 2**31 - 1, -(2**31), None, 16384, 5, 6], pa.int32()),
    "DOUBLE": pa.array([0.0, -0.0, 1.5, float("nan"), float("inf"), -1e-308, None, 1 / 3, 2.0**60], pa.float64()),
    "FLOAT": pa.array([0.0, 0.1, -3.5, float("nan"), float("-inf"), 1e30, None, 1 / 3, 7.0], pa.float32()),
    "STRING": pa.array(["", "a", "ä€😀", None, "x" * 200, "with,comma", "0", "True", " "], pa.string()),
    "BOOL": pa.array([True, False, None, True, False, True, True, False, None], pa.bool_()),
    "BYTES": pa.array([b"", b"\x00", None, b"x" * 300, b"\xff\xfe", b"a", b"b", b"c", b"d"], pa.binary()),
}


@pytest.mark.parametrize("kind", sorted(EDGE))
def test_values_match_feast_serialization_and_value_text(kind: str) -> None:
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    col = EDGE[kind]
    py = [None if v is None or (isinstance(v, float) and v != v) else v for v in col.to_pylist()]
    protos = python_values_to_proto_values(py, ValueType[kind])
    blobs, texts = encode.values(col, kind)
    assert blobs == [p.SerializeToString() for p in protos]
    assert texts == [extract_text_and_num(p, False)[0] for p in protos]


@pytest.mark.parametrize("keys", [
    {"entity_id": ("INT64", [1, -2, 2**40])},
    {"user": ("STRING", ["a", "ü", ""])},
    {"shard": ("INT32", [0, -5, 7])},
    {"blob": ("BYTES", [b"\x00", b"", b"zz"])},
    {"zeta": ("INT64", [3, 4, 5]), "alpha": ("STRING", ["x", "y", "z"])},  # composite: sorted by name
])
def test_entity_keys_match_feast_serialize_entity_key(keys: dict) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    field = {"INT64": "int64_val", "STRING": "string_val", "INT32": "int32_val", "BYTES": "bytes_val"}
    arrow = {"INT64": pa.int64(), "STRING": pa.string(), "INT32": pa.int32(), "BYTES": pa.binary()}
    columns = {k: pa.array(v, arrow[t]) for k, (t, v) in keys.items()}
    ours = encode.entity_keys(columns, {k: t for k, (t, _) in keys.items()})
    for i, got in enumerate(ours):
        proto = EntityKey(join_keys=list(keys), entity_values=[Value(**{field[t]: v[i]}) for t, v in keys.values()])
        assert got == serialize_entity_key(proto, entity_key_serialization_version=3)


def test_null_keys_are_refused_and_unsupported_types_reported() -> None:
    with pytest.raises(ValueError, match="entity key column 'id' holds nulls"):
        encode.entity_keys({"id": pa.array([1, None])}, {"id": "INT64"})
    assert encode.supported(["INT64", "STRING"]) and not encode.supported(["DOUBLE_LIST"])
    assert encode.supported(["INT64", "STRING"], keys=True) and not encode.supported(["DOUBLE"], keys=True)
