"""The inference protocol, without a server: parsing, content negotiation, rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.serving import protocol
from modelops.serving.protocol import RequestError


def test_csv_single_and_batch_with_missing_values():
    assert protocol.parse_csv(b"1,2.5,3\n", 3).tolist() == [[1.0, 2.5, 3.0]]
    batch = protocol.parse_csv(b"1,,3\r\n4,5,nan\n", 3)
    assert batch.shape == (2, 3) and np.isnan(batch[0, 1]) and np.isnan(batch[1, 2])
    many = np.arange(300.0).reshape(100, 3)
    assert np.array_equal(protocol.parse_csv(protocol.to_csv(many), 3), many)


@pytest.mark.parametrize("rows", [1, 100])
def test_csv_errors_name_row_and_column(rows):
    good = b"1,2,3\n" * (rows - 1)
    with pytest.raises(RequestError) as error:
        protocol.parse_csv(good + b"1,x1,3\n", 3)
    assert error.value.status == 400 and error.value.message == f"row {rows}, column 2: 'x1' is not a number"
    with pytest.raises(RequestError, match=f"row {rows} has 4 values but the model expects 3 features"):
        protocol.parse_csv(good + b"1,2,3,4\n", 3)


def test_header_row_is_reported_as_not_a_number():
    with pytest.raises(RequestError, match=r"row 1, column 1: 'length' is not a number"):
        protocol.parse_csv(b"length,diameter\n0.4,0.3\n", 2)


def test_libsvm_with_and_without_labels():
    matrix = protocol.parse_libsvm(b"7 0:1.5 2:3\n1:2\n", 3)
    assert matrix[0, 0] == 1.5 and matrix[0, 2] == 3 and np.isnan(matrix[0, 1])
    assert matrix[1, 1] == 2 and np.isnan(matrix[1, 0])
    with pytest.raises(RequestError, match=r"feature index 3 is outside 0\.\.2"):
        protocol.parse_libsvm(b"3:1\n", 3)
    with pytest.raises(RequestError, match="is not index:value"):
        protocol.parse_libsvm(b"0:a\n", 3)


def test_content_types():
    assert protocol.content_type("text/csv; charset=utf-8") == protocol.CSV
    assert protocol.content_type(None) == protocol.CSV
    assert protocol.content_type("text/x-libsvm") == protocol.LIBSVM
    with pytest.raises(RequestError) as error:
        protocol.content_type("application/x-parquet")
    assert error.value.status == 415


def test_accept_negotiation():
    assert protocol.accept_type(None) == protocol.CSV
    assert protocol.accept_type("*/*") == protocol.CSV
    assert protocol.accept_type("application/json") == protocol.JSON
    assert protocol.accept_type("text/html, application/jsonlines") == protocol.JSONLINES
    assert protocol.accept_type("text/csv;q=0.5, application/json") == protocol.JSON
    for refused in ("text/html", "application/xml;q=1, text/csv;q=0"):
        with pytest.raises(RequestError) as error:
            protocol.accept_type(refused)
        assert error.value.status == 406


def test_rendering_round_trips_float32_exactly():
    scores = np.random.default_rng(0).random(1000).astype(np.float32)
    for kind in (protocol.CSV, protocol.JSON, protocol.JSONLINES):
        body = protocol.render(scores, kind)
        assert np.array_equal(protocol.read_predictions(body, kind).astype(np.float32), scores), kind
    assert protocol.render(np.array([0.5, 2.0, 1 / 3]), protocol.CSV) == b"0.5\n2.0\n0.33333334\n"


def test_csv_responses_give_the_same_numbers_whatever_their_size():
    rng = np.random.default_rng(5)
    scores = (rng.normal(size=5000) * 10.0 ** rng.integers(-30, 30, size=5000)).astype(np.float32)
    whole = protocol.render(scores, protocol.CSV)  # pyarrow writes it
    assert len(scores) >= protocol.ARROW_MIN_PREDICTIONS and whole.count(b"\n") == len(scores)
    one_by_one = b"".join(protocol.render(scores[i:i + 1], protocol.CSV) for i in range(len(scores)))
    assert np.array_equal(protocol.read_predictions(whole), protocol.read_predictions(one_by_one))
    assert np.array_equal(protocol.read_predictions(whole).astype(np.float32), scores)
    assert json.loads(protocol.render(np.array([0.5]), protocol.JSON)) == {"predictions": [{"score": 0.5}]}
    assert protocol.render(np.array([0.5]), protocol.JSONLINES) == b'{"score": 0.5}\n'


def test_to_csv_writes_missing_values_as_empty_cells():
    assert protocol.to_csv(np.array([[1.0, np.nan, 0.1]])) == b"1.0,,0.1\n"


@pytest.mark.parametrize(("body", "message"), [
    (b"1,2,3\n\n4,5,6\n", "row 2 has 0 values"),  # numpy would skip the blank line and shift every row after it
    (b"1,2\n3,4\n", "row 1 has 2 values"),  # consistent, but not the model's width
    (b"1,2,3\n4,5\n", "row 2 has 2 values"),
    (b"1,2,3\n4,5,6,\n", "row 2 has 4 values"),
    (b'1,"2",3\n', "row 1, column 2: '\"2\"' is not a number"),
    (b"1,2,3#4\n", "row 1, column 3: '3#4' is not a number"),  # no comment syntax in a request
    (b"\r" * 200_000, "row 1 has 0 values"),  # large enough for pyarrow, which reads no row at all
])
def test_csv_batches_are_read_whole_or_refused(body, message):
    with pytest.raises(RequestError, match=message):
        protocol.parse_csv(body, 3)


def test_csv_fast_and_careful_paths_agree():
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(500, 4)) * 10.0 ** rng.integers(-8, 8, size=(500, 4))
    rows[rng.random(rows.shape) < 0.05] = np.nan  # empty cells take the careful path
    body = protocol.to_csv(rows)
    assert b",," in body or b"\n," in body
    parsed = protocol.parse_csv(body, 4)
    assert np.array_equal(parsed, rows, equal_nan=True)
    dense = np.nan_to_num(rows)  # no empty cell: numpy reads it in one call
    assert np.array_equal(protocol.parse_csv(protocol.to_csv(dense).replace(b"\n", b"\r\n"), 4), dense)
    assert np.array_equal(protocol.parse_csv(b" 1 , nan,inf\r\n-2e3,+4,.5", 3),
                          np.array([[1, np.nan, np.inf], [-2000, 4, 0.5]]), equal_nan=True)


@pytest.mark.parametrize("arrow", [True, False], ids=["pyarrow", "numpy"])
def test_large_csv_bodies_read_alike_by_either_parser(monkeypatch, arrow):
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(20_000, 5)) * 10.0 ** rng.integers(-6, 6, size=(20_000, 5))
    body = protocol.to_csv(rows)
    assert len(body) > protocol.ARROW_MIN_BYTES
    if arrow:  # a large body never reaches numpy's parser
        monkeypatch.setattr(np, "loadtxt", lambda *a, **k: pytest.fail("np.loadtxt read a large body"))
    else:
        monkeypatch.setattr(protocol, "ARROW_MIN_BYTES", float("inf"))
    assert np.array_equal(protocol.parse_csv(body, 5), rows)
    rows[rng.random(rows.shape) < 0.01] = np.nan  # empty cells
    assert np.array_equal(protocol.parse_csv(protocol.to_csv(rows), 5), rows, equal_nan=True)
    for bad, message in [(b"1,2,3,4,NULL\n", "row 20001, column 5: 'NULL' is not a number"),
                         (b'1,2,3,4,"5"\n', "row 20001, column 5: '\"5\"' is not a number"),
                         (b"1,2,3,4\n", "row 20001 has 4 values"), (b"\n1,2,3,4,5\n", "row 20001 has 0 values")]:
        with pytest.raises(RequestError, match=message):
            protocol.parse_csv(protocol.to_csv(rows) + bad, 5)
