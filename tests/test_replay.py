"""Held-out rows through an endpoint in batches: cut by encoded size, in order, every answer compared and named."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from modelops.entities import EndpointLimits
from modelops.errors import EndpointFailed, PayloadTooLarge
from modelops.release.replay import replay_rows, split_batches
from modelops.serving import protocol
from modelops.serving.protocol import SCORES, read_predictions, to_csv


def test_batches_take_whole_rows_in_order_and_stay_within_the_limit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 7))
    X[rng.random(X.shape) < 0.1] = np.nan  # empty cells: rows of different lengths
    body = to_csv(X)
    batches = split_batches(body, 4096)
    assert len(batches) > 10 and all(b.size <= 4096 for b in batches)
    assert b"".join(body[b.offset:b.end] for b in batches) == body
    assert [b.index for b in batches] == list(range(len(batches)))
    assert batches[0].start == 0 and batches[-1].stop == 1000
    assert all(a.stop == b.start and a.end == b.offset for a, b in zip(batches, batches[1:]))
    for b in batches:  # each batch is its rows' CSV, and as many as fit: the next row would not
        assert body[b.offset:b.end] == to_csv(X[b.start:b.stop])
        if b.stop < 1000:
            assert b.size + len(to_csv(X[b.stop])) > 4096


def test_batches_follow_the_bytes_not_a_row_count():
    narrow, wide = to_csv(np.ones((100, 2))), to_csv(np.full((100, 200), 1 / 3))
    batches = split_batches(narrow + wide, 20_000)
    assert batches[0].rows > 100 and batches[-1].rows < 10  # the narrow rows go many to a batch, the wide few
    assert all(b.size <= 20_000 for b in batches)


def test_a_body_that_fits_is_one_batch_and_no_rows_are_none():
    body = to_csv(np.arange(12.0).reshape(4, 3))
    [only] = split_batches(body, len(body))
    assert (only.start, only.stop, only.offset, only.end) == (0, 4, 0, len(body))
    assert split_batches(b"", 10) == []
    assert [b.rows for b in split_batches(b"1,2\n3,4", 4)] == [1, 1]  # the last row without its line break


def test_a_row_bigger_than_the_limit_is_named_with_its_size():
    rows = np.ones((5, 3))
    rows[3] = 1 / 3
    body = to_csv(rows)
    with pytest.raises(PayloadTooLarge, match=r"row 3 is 57 bytes as CSV, over the 20 bytes one request to the "
                                              r"endpoint may carry, so no batch can send it\. Fix: ") as raised:
        split_batches(body, 20)
    assert isinstance(raised.value, EndpointFailed)


class FakeEndpoints:
    """Answers CSV rows with their first column, as a model predicting it would; remembers what it was sent."""

    def __init__(self, limits: EndpointLimits, *, fail_on: int | None = None, wrong_row: int | None = None):
        self._limits, self.fail_on, self.wrong_row = limits, fail_on, wrong_row
        self.bodies: list[bytes] = []
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def limits(self, name):
        return self._limits

    def invoke(self, name, body, *, inference_id=None, **_):
        with self.lock:
            self.bodies.append(body)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(0.01)
        with self.lock:
            self.in_flight -= 1
        if len(body) > self._limits.max_payload_bytes:
            raise EndpointFailed("413")
        rows = protocol.parse_csv(body)
        if self.fail_on is not None and self.fail_on in rows[:, 1]:
            raise EndpointFailed(f"endpoint {name!r} answered 500: boom")
        answer = rows[:, 0].copy()
        if self.wrong_row is not None:
            answer[rows[:, 1] == self.wrong_row] += 1
        return protocol.render(answer.astype(np.float32), protocol.CSV, SCORES)


class FakeOps:
    def __init__(self, endpoints):
        self.endpoints = endpoints


def rows(n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    X = np.column_stack([np.random.default_rng(1).normal(size=n), np.arange(n)]).astype(np.float64)
    return X, X[:, 0].astype(np.float32)


def test_every_row_is_answered_and_compared_in_parallel_batches_within_the_limit():
    X, expected = rows()
    endpoints = FakeEndpoints(EndpointLimits(8_000, 3))
    replay = replay_rows(FakeOps(endpoints), "m", X, expected, SCORES)
    assert replay.rows == replay.identical == 3000 and not replay.failed and replay.batches == len(endpoints.bodies)
    assert replay.batches > 3 and all(len(b) <= 8_000 for b in endpoints.bodies)
    assert 1 < endpoints.most_in_flight <= 3
    sent = np.concatenate([protocol.parse_csv(b)[:, 1] for b in sorted(endpoints.bodies,
                                                                        key=lambda b: protocol.parse_csv(b)[0, 1])])
    assert np.array_equal(sent, np.arange(3000))  # every row once
    assert [o.batch.index for o in replay.outcomes] == list(range(replay.batches))  # outcomes in row order
    assert replay.max_abs_difference == 0.0 and "3,000 rows in" in replay.describe()


def test_differing_rows_are_named_with_their_batch():
    X, expected = rows()
    replay = replay_rows(FakeOps(FakeEndpoints(EndpointLimits(8_000, 2), wrong_row=1234)), "m", X, expected, SCORES)
    assert replay.identical == 2999
    [difference] = replay.differences()
    [outcome] = [o for o in replay.outcomes if o.differing_count]
    b = outcome.batch
    assert b.start <= 1234 < b.stop
    assert difference == (f"batch {b.index} (rows {b.start:,}-{b.stop - 1:,}): 1 of {b.rows:,} rows differ, e.g. "
                          f"rows 1,234 (max |difference| 1)")


def test_a_failed_batch_counts_its_rows_and_names_itself():
    X, expected = rows()
    replay = replay_rows(FakeOps(FakeEndpoints(EndpointLimits(8_000, 2), fail_on=2000)), "m", X, expected, SCORES)
    [failed] = replay.failed
    assert failed.batch.start <= 2000 < failed.batch.stop
    assert replay.failed_rows == failed.batch.rows and replay.identical == 3000 - failed.batch.rows
    assert replay.errors() == [f"{failed.batch.describe()}: endpoint 'm' answered 500: boom"]


def test_answers_under_inference_output_are_compared_line_by_line():
    from modelops.serving.protocol import Output

    X, expected = rows(50)
    output = Output(("predicted_score",), protocol.CSV, "reg:squarederror")

    class Selected(FakeEndpoints):
        def invoke(self, name, body, **kwargs):
            scores = read_predictions(super().invoke(name, body, **kwargs))
            return protocol.render(scores.astype(np.float32), protocol.CSV, output)

    replay = replay_rows(FakeOps(Selected(EndpointLimits(400, 2))), "m", X, expected, output)
    assert replay.identical == 50 and replay.batches > 1


def split_text(X: np.ndarray, y: np.ndarray) -> bytes:
    """A split as the dataset stores it: the target first, no header (pandas' to_csv)."""
    import pandas as pd

    return pd.DataFrame(np.column_stack([y, X])).to_csv(header=False, index=False, lineterminator="\n").encode()


def test_a_stored_split_is_sent_as_its_own_lines_without_the_target():
    from modelops.release.replay import CsvRows

    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(500, 6)), rng.integers(0, 2, 500).astype(float)
    X[rng.random(X.shape) < 0.1] = np.nan
    text = split_text(X, y)
    rows = CsvRows.of_split(text, "test.csv")
    assert len(rows) == 500 and np.array_equal(rows.labels, y)
    lines = text.decode().splitlines(keepends=True)
    assert rows.body(10, 13) == "".join(line.split(",", 1)[1] for line in lines[10:13]).encode()
    np.testing.assert_array_equal(rows.matrix(0, 500), X)  # NaN where a cell is empty
    assert rows.body(7, 7) == b"" and CsvRows.of_split(b"").sizes.size == 0


def test_a_split_line_without_features_is_named():
    from modelops.errors import DataError
    from modelops.release.replay import CsvRows

    with pytest.raises(DataError, match=r"test\.csv: line 2 has no feature cells after its target\. Fix: "):
        CsvRows.of_split(b"1,2.5,3\n0\n1,4,5\n", "test.csv")
    with pytest.raises(DataError, match=r"line 3 has no feature cells"):
        CsvRows.of_split(b"1,2.5,3\n0,1,2\n7", "test.csv")  # the last line, without its line break


def test_a_target_longer_than_the_window_searched_is_found_all_the_same():
    from modelops.release.replay import TARGET_WINDOW, CsvRows

    long = "1" + "0" * (TARGET_WINDOW + 5)
    rows = CsvRows.of_split(f"0,1.5,2\n{long},3,\n1,,4".encode())
    assert rows.labels.tolist() == [0.0, float(long), 1.0]
    assert rows.body(0, 3) == b"1.5,2\n3,\n,4"
    np.testing.assert_array_equal(rows.matrix(0, 3), [[1.5, 2], [3, np.nan], [np.nan, 4]])


def test_a_split_replayed_is_predicted_batch_by_batch_and_every_row_compared():
    from modelops.release.replay import CsvRows

    X, expected = rows()
    endpoints = FakeEndpoints(EndpointLimits(8_000, 2), wrong_row=1234)
    held_out = CsvRows.of_split(split_text(X, np.zeros(len(X))))
    predicted = []

    def predict(matrix):  # what the artifact does offline: here the first column, as FakeEndpoints answers
        predicted.append(len(matrix))
        return matrix[:, 0].astype(np.float32)

    replay = replay_rows(FakeOps(endpoints), "m", held_out, predict, SCORES)
    assert replay.batches > 3 and len(predicted) == replay.batches and sum(predicted) == 3000
    assert all(len(b) <= 8_000 for b in endpoints.bodies)
    assert replay.identical == 2999 and replay.differences()[0].endswith("e.g. rows 1,234 (max |difference| 1)")
    np.testing.assert_array_equal(replay.predictions, expected)  # every row's offline prediction, in order
