"""Byte encodings Feast's online stores use, computed straight from Arrow columns (pure functions).

- entity keys: Feast's ``serialize_entity_key`` format version 3 (key count, then per key its name, then per
  value its type, length and little-endian bytes; keys sorted by name);
- feature values: the serialized ``feast.types.Value`` protobuf (one field of the ``val`` oneof, so zero values
  are written too) plus the ``value_text`` Feast's SQL stores keep next to it.

Only scalar types are covered; :func:`supported` says whether a view can use them. The tests compare every byte
with Feast's own functions.
"""

from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa

# feast.types.Value field numbers (feast/protos/feast/types/Value.proto) and ValueType enum values.
_FIELD = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4, "DOUBLE": 5, "FLOAT": 6, "BOOL": 7}
_KEY_TYPE = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4}
_U32 = struct.Struct("<I")


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 are sign-extended to ten bytes, as protobuf does
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def supported(value_types: list[str], keys: bool = False) -> bool:
    """Whether every value type name (``ValueType.name``) has a value (or, with ``keys``, entity key) encoding."""
    return all(t in (_KEY_TYPE if keys else _FIELD) for t in value_types)


def entity_keys(columns: dict[str, pa.Array], key_types: dict[str, str]) -> list[bytes]:
    """Serialized entity keys (format 3) for each row; key columns must not hold nulls."""
    names = sorted(key_types)
    head = [_U32.pack(len(names))]
    for name in names:
        raw = name.encode("utf8")
        head += [_U32.pack(_KEY_TYPE["STRING"]), _U32.pack(len(raw)), raw]
    prefix = b"".join(head)
    parts: list[list[bytes]] = []
    for name in names:
        kind, col = key_types[name], columns[name]
        if col.null_count:
            raise ValueError(f"entity key column {name!r} holds nulls")
        tag = _U32.pack(_KEY_TYPE[kind])
        if kind == "INT64":
            parts.append([tag + b"\x08\x00\x00\x00" + struct.pack("<q", v) for v in col.to_pylist()])
        elif kind == "INT32":
            parts.append([tag + b"\x04\x00\x00\x00" + struct.pack("<i", v) for v in col.to_pylist()])
        else:
            values = [v.encode("utf8") for v in col.to_pylist()] if kind == "STRING" else col.to_pylist()
            parts.append([tag + _U32.pack(len(v)) + v for v in values])
    if len(parts) == 1:
        return [prefix + p for p in parts[0]]
    return [prefix + b"".join(row) for row in zip(*parts, strict=True)]


def values(col: pa.Array, kind: str) -> tuple[list[bytes], list[str | None]]:
    """Serialized ``Value`` and ``value_text`` for each row; null (and float NaN) is an empty ``Value``."""
    field = _FIELD[kind]
    py: list[Any] = col.to_pylist()
    if kind in ("DOUBLE", "FLOAT"):
        fmt = struct.Struct("<d" if kind == "DOUBLE" else "<f")
        tag = bytes([field << 3 | (1 if kind == "DOUBLE" else 5)])
        enc = [None if v is None or v != v else fmt.pack(v) for v in py]
        stored = [None if b is None else fmt.unpack(b)[0] for b in enc]  # FLOAT: the float32 Feast reads back
        return [b"" if b is None else tag + b for b in enc], [None if v is None else str(v) for v in stored]
    tag = bytes([field << 3 | (2 if kind in ("STRING", "BYTES") else 0)])
    if kind in ("INT64", "INT32"):
        return [b"" if v is None else tag + _varint(v) for v in py], [None if v is None else str(v) for v in py]
    if kind == "BOOL":
        return [b"" if v is None else tag + (b"\x01" if v else b"\x00") for v in py], \
            [None if v is None else str(v) for v in py]
    raw = [None if v is None else (v.encode("utf8") if kind == "STRING" else v) for v in py]
    texts = py if kind == "STRING" else [None] * len(py)
    return [b"" if v is None else tag + _varint(len(v)) + v for v in raw], texts
