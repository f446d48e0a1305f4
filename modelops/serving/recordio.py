"""RecordIO-protobuf, SageMaker's ``application/x-recordio-protobuf``: read and written without a protobuf runtime.

Each record is an ``aialgs.data.Record`` (record.proto, shipped by sagemaker-containers as record_pb2)
framed as MXNet RecordIO: a little-endian magic number 0xCED7230A, the record's length, the record, zero
padding to a multiple of 4 bytes. The schema is small and fixed::

    Record        { map<string, Value> features = 1; map<string, Value> label = 2; string uid = 3; ... }
    Value         { oneof { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                            Int32Tensor int32_tensor = 7; Bytes bytes = 9; } }
    *Tensor       { repeated <float|double|int32> values = 1 [packed]; repeated uint64 keys = 2 [packed];
                    repeated uint64 shape = 3 [packed]; }

so it is read here with protobuf's wire rules (unknown fields skipped, packed or not, the last map entry and
the last oneof member win, repeated occurrences of a message merged) rather than adding a protobuf runtime to
every endpoint. tests/test_recordio.py checks both directions against google.protobuf built from that schema.
What the container makes of the records is read from its recordio_protobuf.py and serve_utils.py.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

MAGIC = 0xCED7230A
_HEADER = struct.Struct("<II")
_VALUE_KINDS = {2: "<f4", 3: "<f8", 7: "int32"}  # Value's tensor fields and their element types
_UNPACKED_WIRE = {"<f4": 5, "<f8": 1, "int32": 0}


class DecodeError(ValueError):
    """The body is not RecordIO-protobuf (bad framing or a malformed record)."""


@dataclass
class Tensor:
    """One Float32/Float64/Int32 tensor: values, and for sparse data the column keys and the row's shape."""

    dtype: str
    values: list = field(default_factory=list)  # chunks: numpy arrays, concatenated by array()
    keys: list = field(default_factory=list)
    shape: list = field(default_factory=list)

    def array(self) -> np.ndarray:
        return np.concatenate(self.values) if self.values else np.array([], dtype=self.dtype)


# -- reading ---------------------------------------------------------------------------------------------------


def frames(body: bytes):
    """The records of a RecordIO body, as the container reads them (a trailing fragment under 8 bytes is ignored).

    Raises:
        DecodeError: a frame without the magic number, or one that runs past the end of the body.
    """
    view, offset = memoryview(body), 0
    while offset + 8 <= len(view):
        magic, length = _HEADER.unpack_from(view, offset)
        if magic != MAGIC:
            raise DecodeError(f"no RecordIO magic number at byte {offset}")
        start, offset = offset + 8, offset + 8 + (length + 3) // 4 * 4
        if offset > len(view):
            raise DecodeError(f"the record at byte {start - 8} is truncated ({length} bytes announced)")
        yield view[start:start + length]


def record_values(record: memoryview, map_field: int = 1, key: str = "values") -> Tensor | None:
    """The tensor under ``key`` in a Record's features (1) or label (2) map; None when there is none.

    The container skips a record whose features have no ``values`` entry, or whose entry holds no tensor.
    """
    found = None
    for entry_key, value in _map_entries(record, map_field):
        if entry_key == key:
            found = (value,)  # a later entry with the same key replaces this one
    return found[0] if found else None


def read_records(body: bytes, map_field: int = 1) -> list[dict[str, np.ndarray]]:
    """Every record's tensors by key (client side: e.g. the label map of a selectable-output answer)."""
    records = []
    for record in frames(body):
        found: dict[str, Tensor | None] = dict(_map_entries(record, map_field))  # a later key replaces an earlier
        records.append({k: v.array() for k, v in found.items() if v is not None})
    return records


def _map_entries(record: memoryview, map_field: int):
    """The (key, tensor or None) entries of a Record's features (1) or label (2) map, in wire order."""
    for number, wire, payload in _fields(record):
        if number == map_field and wire == 2:
            entry_key, value = "", None
            for entry_number, entry_wire, entry_payload in _fields(payload):
                if entry_number == 1 and entry_wire == 2:
                    entry_key = _text(entry_payload)
                elif entry_number == 2 and entry_wire == 2:
                    value = _value(entry_payload, value)
            yield entry_key, value


def _value(payload: memoryview, previous: Tensor | None) -> Tensor | None:
    tensor = previous
    for number, wire, body in _fields(payload):
        if wire != 2:
            continue
        if number in _VALUE_KINDS:
            dtype = _VALUE_KINDS[number]
            if tensor is None or tensor.dtype != dtype:  # another member of the oneof replaces it
                tensor = Tensor(dtype)
            _tensor(body, tensor)
        elif number == 9:
            tensor = None  # bytes: not a tensor, the container skips such a record
    return tensor


def _tensor(payload: memoryview, tensor: Tensor) -> None:
    unpacked = _UNPACKED_WIRE[tensor.dtype]
    for number, wire, body in _fields(payload):
        if number == 1:
            if wire == 2:
                tensor.values.append(_packed(body, tensor.dtype))
            elif wire == unpacked:
                tensor.values.append(_packed(body, tensor.dtype) if wire != 0 else _int32([body]))
        elif number in (2, 3):
            target = tensor.keys if number == 2 else tensor.shape
            if wire == 2:
                target.extend(_varints(body))
            elif wire == 0:
                target.append(body)


def _packed(body, dtype: str) -> np.ndarray:
    if dtype == "int32":
        return _int32(_varints(body))
    size = np.dtype(dtype).itemsize
    if len(body) % size:
        raise DecodeError(f"a packed {dtype} field of {len(body)} bytes")
    return np.frombuffer(body, dtype=dtype).copy()


def _int32(values: list[int]) -> np.ndarray:
    return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in values], dtype=np.int64).astype(np.int32)


def _varints(body) -> list[int]:
    found, position = [], 0
    while position < len(body):
        value, position = _varint(body, position)
        found.append(value)
    return found


def _varint(buffer, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise DecodeError("a truncated or overlong varint")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & ((1 << 64) - 1), position
        shift += 7


def _fields(buffer):
    """(field number, wire type, payload) of each field: an int for varints, bytes for the others."""
    position = 0
    while position < len(buffer):
        tag, position = _varint(buffer, position)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise DecodeError("a field numbered 0")
        if wire == 0:
            payload, position = _varint(buffer, position)
        elif wire in (1, 5):
            end = position + (8 if wire == 1 else 4)
            payload, position = buffer[position:end], end
        elif wire == 2:
            length, position = _varint(buffer, position)
            payload, position = buffer[position:position + length], position + length
        else:
            raise DecodeError(f"wire type {wire} (groups are not part of record.proto)")
        if position > len(buffer):
            raise DecodeError("a field runs past the end of its message")
        yield number, wire, payload


def _text(payload) -> str:
    try:
        return bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("a map key that is not UTF-8") from exc


# -- writing ---------------------------------------------------------------------------------------------------


def frame(record: bytes) -> bytes:
    """One RecordIO frame: magic, length, the record, zero padding to 4 bytes."""
    return _HEADER.pack(MAGIC, len(record)) + record + b"\0" * (-len(record) % 4)


def tensor_value(values, dtype: str = "<f4", *, keys=None, shape=None) -> bytes:
    """A serialized Value holding one tensor (packed fields, as protobuf writes them)."""
    number = {v: k for k, v in _VALUE_KINDS.items()}[dtype]
    array = np.asarray(values, dtype=np.float64 if dtype != "int32" else np.int64)
    if dtype == "int32":
        body = _key(1, 2, b"".join(_encode_varint(int(v) & ((1 << 64) - 1)) for v in array.tolist()))
    else:
        body = _key(1, 2, array.astype(dtype).tobytes())
    if keys is not None:
        body += _key(2, 2, b"".join(_encode_varint(int(k)) for k in keys))
    if shape is not None:
        body += _key(3, 2, b"".join(_encode_varint(int(s)) for s in shape))
    return _key(number, 2, body)


def map_entry(map_field: int, key: str, value: bytes) -> bytes:
    """One entry of a Record's features (1) or label (2) map."""
    return _key(map_field, 2, _key(1, 2, key.encode()) + _key(2, 2, value))


def write_dense(rows: np.ndarray) -> bytes:
    """Client side: a feature matrix as dense records, as the SageMaker SDK's RecordSerializer writes them.

    Float32 rows become Float32 tensors and anything else Float64 (missing values as NaN).
    """
    rows = np.atleast_2d(np.asarray(rows))
    dtype = "<f4" if rows.dtype == np.float32 else "<f8"
    return b"".join(frame(map_entry(1, "values", tensor_value(row, dtype))) for row in rows)


def write_label_records(predictions: list[dict]) -> bytes:
    """Selectable-output answers as serve_utils._encode_selected_predictions_recordio_protobuf writes them.

    Every value becomes a Float32 tensor under ``label[key]``. The container never empties its record
    buffer between predictions, so record n holds records 1..n one after the other; protobuf reads that as
    record n (the later map entries win) but the answer grows with the square of the row count. That is
    reproduced, so an answer that would break SageMaker's 6 MB response limit breaks it here too.
    """
    out, accumulated = bytearray(), bytearray()
    for prediction in predictions:
        for key, value in prediction.items():
            accumulated += map_entry(2, key, tensor_value(value if isinstance(value, list) else [value]))
        out += frame(bytes(accumulated))
    return bytes(out)


def _key(number: int, wire: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | wire) + (_encode_varint(len(payload)) + payload if wire == 2 else payload)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
