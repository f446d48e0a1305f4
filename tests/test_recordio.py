"""RecordIO-protobuf against google.protobuf itself, built from SageMaker's record.proto (aialgs.data)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from google.protobuf import descriptor_pb2  # a dev dependency (pyproject.toml): the reference here

from modelops.serving import protocol, recordio
from modelops.serving.protocol import RequestError


def record_class():
    """aialgs.data.Record as sagemaker-containers' record_pb2 declares it (proto2, packed tensors)."""
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="record_test.proto", package="aialgs.data")

    def message(name, *fields, nested=()):
        found = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name, packed, oneof in fields:
            field = found.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
            if packed:
                field.options.packed = True
            if oneof:
                field.oneof_index = 0
        for entry in nested:
            found.nested_type.append(entry)
        return found

    repeated, optional = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    tensors = (("Float32Tensor", F.TYPE_FLOAT), ("Float64Tensor", F.TYPE_DOUBLE), ("Int32Tensor", F.TYPE_INT32))
    for name, kind in tensors:
        message(name, ("values", 1, kind, repeated, "", True, False),
                ("keys", 2, F.TYPE_UINT64, repeated, "", True, False),
                ("shape", 3, F.TYPE_UINT64, repeated, "", True, False))
    message("Bytes", ("value", 1, F.TYPE_BYTES, repeated, "", False, False),
            ("content_type", 2, F.TYPE_STRING, optional, "", False, False))
    value = message("Value", *[(n, k, F.TYPE_MESSAGE, optional, f".aialgs.data.{t}", False, True) for n, k, t in (
        ("float32_tensor", 2, "Float32Tensor"), ("float64_tensor", 3, "Float64Tensor"),
        ("int32_tensor", 7, "Int32Tensor"), ("bytes", 9, "Bytes"))])
    value.oneof_decl.add(name="value")
    entries = []
    for entry_name in ("FeaturesEntry", "LabelEntry"):
        entry = descriptor_pb2.DescriptorProto(name=entry_name)
        entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=optional)
        entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=optional, type_name=".aialgs.data.Value")
        entry.options.map_entry = True
        entries.append(entry)
    message("Record", ("features", 1, F.TYPE_MESSAGE, repeated, ".aialgs.data.Record.FeaturesEntry", False, False),
            ("label", 2, F.TYPE_MESSAGE, repeated, ".aialgs.data.Record.LabelEntry", False, False),
            ("uid", 3, F.TYPE_STRING, optional, "", False, False), nested=entries)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("aialgs.data.Record"))


Record = record_class()


def framed(*records) -> bytes:
    return b"".join(recordio.frame(r.SerializeToString()) for r in records)


def dense_record(values, kind="float32_tensor", label=None):
    record = Record()
    getattr(record.features["values"], kind).values.extend(values)
    if label is not None:
        record.label["values"].float32_tensor.values.extend([label])
    return record


def test_dense_records_of_every_type_read_as_rows():
    rows = np.array([[0.5, -1.25, 3.0], [2.0, np.nan, 1e-3]])
    for kind, dtype in (("float32_tensor", np.float32), ("float64_tensor", np.float64)):
        body = framed(*(dense_record(row, kind, label=1.0) for row in rows))
        parsed = protocol.parse(body, protocol.RECORDIO)
        assert parsed.dtype == dtype and np.array_equal(parsed, rows.astype(dtype), equal_nan=True), kind
    ints = framed(dense_record([1, -2, 3], "int32_tensor"))
    assert protocol.parse(ints, protocol.RECORDIO).tolist() == [[1.0, -2.0, 3.0]]


def test_our_dense_writer_is_what_protobuf_reads():
    rows = np.random.default_rng(0).normal(size=(4, 3))
    for array in (rows, rows.astype(np.float32)):
        parsed = [Record.FromString(bytes(r)) for r in recordio.frames(protocol.to_recordio(array))]
        kind = "float32_tensor" if array.dtype == np.float32 else "float64_tensor"
        assert [list(getattr(r.features["values"], kind).values) for r in parsed] == array.tolist()


def test_sparse_records_take_their_width_from_shape_or_the_largest_key():
    record = Record()
    tensor = record.features["values"].float32_tensor
    tensor.values.extend([1.5, 2.5])
    tensor.keys.extend([0, 3])
    tensor.shape.extend([6])
    other = Record()
    other.features["values"].float32_tensor.values.extend([4.0])
    other.features["values"].float32_tensor.keys.extend([2])
    other.features["values"].float32_tensor.shape.extend([6])
    matrix = protocol.parse(framed(record, other), protocol.RECORDIO)
    assert matrix.shape == (2, 6) and matrix.toarray().tolist() == [[1.5, 0, 0, 2.5, 0, 0], [0, 0, 4.0, 0, 0, 0]]
    del tensor.shape[:]
    assert protocol.parse(framed(record), protocol.RECORDIO).shape == (1, 4)


def test_protobuf_wire_rules_unpacked_merged_last_entry_wins_unknown_skipped():
    values = recordio.map_entry(1, "values", recordio.tensor_value([9.0]))
    unpacked = b"\x12" + bytes([10]) + b"\x0d" + struct.pack("<f", 1.5) + b"\x0d" + struct.pack("<f", 2.5)  # Value
    body = (b"\x1a\x03abc"  # uid, skipped
            + values + recordio.map_entry(1, "values", unpacked)  # a later entry with the same key wins
            + recordio.map_entry(1, "other", recordio.tensor_value([7.0])) + b"\xa0\x06\x01")  # unknown varint field
    assert Record.FromString(body).features["values"].float32_tensor.values == [1.5, 2.5]
    assert protocol.parse(recordio.frame(body), protocol.RECORDIO).tolist() == [[1.5, 2.5]]
    merged = recordio.map_entry(1, "values", recordio.tensor_value([1.0]) + recordio.tensor_value([2.0]))
    assert list(Record.FromString(merged).features["values"].float32_tensor.values) == [1.0, 2.0]
    assert protocol.parse(recordio.frame(merged), protocol.RECORDIO).tolist() == [[1.0, 2.0]]


def test_records_without_values_are_skipped_and_bad_bodies_are_415():
    empty = Record()
    empty.features["other"].float32_tensor.values.extend([1.0])
    body = framed(empty, dense_record([1.0, 2.0]))
    assert protocol.parse(body, protocol.RECORDIO).tolist() == [[1.0, 2.0]]
    assert protocol.parse(body + b"\0\0\0", protocol.RECORDIO).shape == (1, 2)  # a fragment under 8 bytes is ignored
    for bad, message in [(b"garbage!", "no RecordIO magic number"), (framed(empty), "No records found"),
                         (body[:-4], "truncated"), (framed(dense_record([1.0]), dense_record([1.0, 2.0])), "dimension"),
                         (framed(dense_record([1.0], label=1.0), dense_record([2.0])), "1 label values for 2 records"),
                         (recordio.frame(b"\x0a\x05\x0a\x03ab"), "runs past the end")]:
        with pytest.raises(RequestError, match=message) as error:
            protocol.parse(bad, protocol.RECORDIO)
        assert error.value.status == 415


def test_selected_answers_parse_as_protobuf_and_grow_as_the_containers_do():
    rows = [{"predicted_label": 1, "probabilities": [0.25, 0.75]}, {"predicted_label": 0, "probabilities": [0.5, 0.5]},
            {"predicted_label": 1, "probabilities": [0.125, 0.875]}]
    body = recordio.write_label_records(rows)
    records = [Record.FromString(bytes(r)) for r in recordio.frames(body)]
    labels = [(list(r.label["predicted_label"].float32_tensor.values),
               list(r.label["probabilities"].float32_tensor.values)) for r in records]
    assert labels == [([1.0], [0.25, 0.75]), ([0.0], [0.5, 0.5]), ([1.0], [0.125, 0.875])]
    sizes = [len(r) for r in recordio.frames(body)]
    assert sizes[1] == 2 * sizes[0] and sizes[2] == 3 * sizes[0]  # record n carries records 1..n (serve_utils)
    assert [r["probabilities"].tolist() for r in recordio.read_records(body, map_field=2)] == [
        [0.25, 0.75], [0.5, 0.5], [0.125, 0.875]]
