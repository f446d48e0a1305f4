"""Held-out rows through a live endpoint: in batches within its limits, several at once, every answer compared.

What the deploy's answer check and the promotion gate share. The rows are CSV lines (``CsvRows``): a stored split's
own lines without their target cell, sent as they are stored, so a large split is never turned into numbers and back
into text in Python. They are cut at row boundaries into batches of at most the endpoint's payload limit
(``Endpoints.limits``: the container's ``MaxPayloadInMB``, 6 MB on SageMaker), cut by their encoded size rather than a
row count, since rows can be wide; up to its ``MaxConcurrentTransforms`` batches are in flight at once (threads: boto3
clients are thread-safe). Each answer is compared row by row with the artifact's offline prediction for the same
rows, read from the batch's text by pyarrow (not by the endpoint's code), so a failure names the batch and the rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from modelops.data.datasets import read_matrix
from modelops.entities import EndpointLimits
from modelops.errors import EndpointFailed, PayloadTooLarge

#: Differing rows named in a failure (the count is complete; the first few say which).
KEPT_ROWS = 5


@dataclass(frozen=True)
class Batch:
    """Consecutive held-out rows ``start`` to ``stop - 1`` and where their CSV lines are in the whole body."""

    index: int
    start: int
    stop: int
    offset: int  # first byte in the whole body
    end: int  # one past the last byte

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def size(self) -> int:
        return self.end - self.offset

    def describe(self) -> str:
        return f"batch {self.index} (rows {self.start:,}-{self.stop - 1:,})"


@dataclass(frozen=True)
class CsvRows:
    """Feature rows as CSV lines in one buffer: row ``i`` is ``text[starts[i]:ends[i]]``, its line break included."""

    text: bytes
    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray | None = None  # a split's target cells, as numbers (``of_split``)

    @classmethod
    def of_body(cls, body: bytes) -> CsvRows:
        """A CSV body of one row per line."""
        ends = line_ends(body)
        return cls(body, _line_starts(ends), ends)

    @classmethod
    def of_matrix(cls, X: np.ndarray) -> CsvRows:
        """Feature rows as ``protocol.to_csv`` writes them (exact float round trip, NaN as an empty cell)."""
        from modelops.serving.protocol import to_csv

        return cls.of_body(to_csv(X) if len(X) else b"")

    @classmethod
    def of_split(cls, text: bytes, name: str = "the split") -> CsvRows:
        """A stored split (``<split>.csv``: the target first, no header) as its feature lines and labels.

        Raises:
            DataError: a line has no feature cells after its target (not a split this project wrote).
        """
        from modelops.errors import DataError

        ends = line_ends(text)
        line_starts = _line_starts(ends)
        first = _first_commas(text, line_starts)
        short = np.flatnonzero(first >= ends)
        if len(short):
            raise DataError(f"{name}: line {int(short[0]) + 1:,} has no feature cells after its target. Fix: gather "
                            f"the data again (`python -m ci run <model folder> --stage gather`).")
        labels = np.array([text[a:b] for a, b in zip(line_starts.tolist(), first.tolist())], dtype=np.float64) \
            if len(ends) else np.empty(0)
        return cls(text, first + 1, ends, labels)

    def __len__(self) -> int:
        return len(self.ends)

    @property
    def sizes(self) -> np.ndarray:
        return self.ends - self.starts

    def body(self, start: int, stop: int) -> bytes:
        """Rows ``start`` to ``stop - 1`` as one CSV body."""
        if stop <= start:
            return b""
        starts, ends = self.starts[start:stop], self.ends[start:stop]
        if np.array_equal(starts[1:], ends[:-1]):  # consecutive in the buffer: one slice
            return self.text[int(starts[0]):int(ends[-1])]
        view = memoryview(self.text)
        return b"".join([view[a:b] for a, b in zip(starts.tolist(), ends.tolist())])

    def matrix(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop - 1`` as float64 numbers (an empty cell is NaN), read by pyarrow."""
        return read_matrix(self.body(start, stop))


def line_ends(body: bytes) -> np.ndarray:
    """One past each line's last byte (its line break); a last line without one ends where the body does."""
    if not body:
        return np.empty(0, dtype=np.int64)
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n")) + 1
    if not len(ends) or ends[-1] != len(body):
        ends = np.append(ends, len(body))
    return ends.astype(np.int64)


#: Bytes after a line's start searched at once for the comma that ends its target cell (a longer target is found
#: by a search of its own).
TARGET_WINDOW = 32


def _first_commas(text: bytes, starts: np.ndarray) -> np.ndarray:
    """Where the first comma at or after each of ``starts`` is (``len(text)``: none): the end of each line's target
    cell, looked for in a window of bytes per line rather than across the whole text."""
    if not len(starts):
        return starts
    window = np.minimum(starts[:, None] + np.arange(TARGET_WINDOW), len(text) - 1)
    commas = np.frombuffer(text, dtype=np.uint8)[window] == ord(",")
    first = starts + commas.argmax(axis=1)
    for row in np.flatnonzero(~commas.any(axis=1)).tolist():
        found = text.find(b",", int(starts[row]))
        first[row] = found if found >= 0 else len(text)
    return first


def _line_starts(ends: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], ends[:-1]]).astype(np.int64) if len(ends) else np.empty(0, dtype=np.int64)


def split_batches(body: bytes, max_bytes: int) -> list[Batch]:
    """Cut a CSV body of one row per line into consecutive batches of whole rows, each at most ``max_bytes``.

    Rows stay in order; each batch takes as many rows as fit.

    Raises:
        PayloadTooLarge: one row alone is over ``max_bytes`` (naming the row and its size).
    """
    return batches_of(CsvRows.of_body(body).sizes, max_bytes)


def batches_of(sizes: np.ndarray, max_bytes: int) -> list[Batch]:
    """Consecutive batches of whole rows of these sizes (bytes as CSV), each at most ``max_bytes``, in order.

    Raises:
        PayloadTooLarge: one row alone is over ``max_bytes`` (naming the row and its size).
    """
    if not len(sizes):
        return []
    too_big = np.flatnonzero(sizes > max_bytes)
    if len(too_big):
        row = int(too_big[0])
        raise PayloadTooLarge(f"row {row:,} is {int(sizes[row]):,} bytes as CSV, over the {max_bytes:,} bytes one "
                              f"request to the endpoint may carry, so no batch can send it. Fix: fewer or narrower "
                              f"feature columns (model.yml data), or send this row in a batch transform job.")
    ends = np.cumsum(sizes)  # one past each row's last byte in the rows' whole body
    batches, start, offset = [], 0, 0
    while start < len(ends):
        stop = int(np.searchsorted(ends, offset + max_bytes, side="right"))  # rows ending within the limit
        batches.append(Batch(len(batches), start, stop, offset, int(ends[stop - 1])))
        start, offset = stop, int(ends[stop - 1])
    return batches


@dataclass(frozen=True)
class BatchOutcome:
    """One batch's answer against the artifact: how many rows were identical, which differed, or its error."""

    batch: Batch
    identical: int = 0
    differing: tuple[int, ...] = ()  # held-out row numbers, the first KEPT_ROWS
    differing_count: int = 0
    max_abs_difference: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class Replay:
    """Every batch's outcome, in row order, and the limits they were sent within."""

    rows: int
    limits: EndpointLimits
    outcomes: tuple[BatchOutcome, ...]
    predictions: np.ndarray | None = field(default=None, repr=False)  # the artifact's offline ones, every row

    @property
    def batches(self) -> int:
        return len(self.outcomes)

    @property
    def largest_batch_rows(self) -> int:
        return max((o.batch.rows for o in self.outcomes), default=0)

    @property
    def identical(self) -> int:
        return sum(o.identical for o in self.outcomes)

    @property
    def failed(self) -> list[BatchOutcome]:
        """The batches the endpoint answered with an error."""
        return [o for o in self.outcomes if o.error is not None]

    @property
    def failed_rows(self) -> int:
        return sum(o.batch.rows for o in self.failed)

    @property
    def answered(self) -> int:
        return self.rows - self.failed_rows

    @property
    def max_abs_difference(self) -> float | None:
        answered = [o.max_abs_difference for o in self.outcomes if o.error is None]
        return max(answered) if answered else None

    def errors(self) -> list[str]:
        """Each failed batch, named, with the endpoint's error."""
        return [f"{o.batch.describe()}: {o.error}" for o in self.failed]

    def differences(self) -> list[str]:
        """Each batch with differing answers, named, with its first differing rows."""
        return [f"{o.batch.describe()}: {o.differing_count:,} of {o.batch.rows:,} rows differ, e.g. rows "
                f"{', '.join(f'{r:,}' for r in o.differing)} (max |difference| {o.max_abs_difference:.3g})"
                for o in self.outcomes if o.differing_count]

    def describe(self) -> str:
        """How the rows were sent, in one phrase."""
        return (f"{self.rows:,} rows in {self.batches} batch{'es' if self.batches != 1 else ''} of up to "
                f"{self.largest_batch_rows:,} rows (<= {self.limits.max_payload_bytes:,} bytes each, "
                f"{self.limits.max_concurrency} at once)")


def replay_rows(ops, endpoint: str, rows: np.ndarray | CsvRows, expected, output, *,
                inference_id: str | None = None, limits: EndpointLimits | None = None) -> Replay:
    """Send ``rows`` through ``endpoint`` in batches; compare each answer with the artifact's predictions row by row.

    Args:
        ops: the backend (``ops.endpoints.invoke`` and ``limits``).
        rows: the held-out feature rows: their CSV lines (``CsvRows``: a stored split's are sent as stored), or a
            matrix (written as ``protocol.to_csv`` does).
        expected: the artifact's offline predictions for them, or a function predicting a batch's rows (a float64
            matrix read from its body) offline: ``booster.inplace_predict``.
        output: the container's switches for the model (``protocol.Output``): with ``inference_output`` the
            answer must be, line for line, what the container writes for ``expected``.
        inference_id: sent with every request (data capture records it).
        limits: the endpoint's (default: ``ops.endpoints.limits(endpoint)``).

    Returns:
        Every batch's outcome, and the offline predictions of every row (``Replay.predictions``).

    Raises:
        PayloadTooLarge: a single row is over the payload limit.
        EndpointFailed: the endpoint cannot say its limits.
    """
    lines = rows if isinstance(rows, CsvRows) else CsvRows.of_matrix(rows)
    limits = limits or ops.endpoints.limits(endpoint)
    batches = batches_of(lines.sizes, limits.max_payload_bytes)

    def send(batch: Batch) -> tuple[BatchOutcome, np.ndarray]:
        body = lines.body(batch.start, batch.stop)
        wanted = (np.asarray(expected(lines.matrix(batch.start, batch.stop))) if callable(expected)
                  else expected[batch.start:batch.stop])
        try:
            answer = ops.endpoints.invoke(endpoint, body, inference_id=inference_id)
        except EndpointFailed as exc:
            return BatchOutcome(batch, error=str(exc)), wanted
        return compare(batch, answer, wanted, output), wanted

    with ThreadPoolExecutor(max_workers=max(1, min(limits.max_concurrency, len(batches)))) as pool:
        done = list(pool.map(send, batches))  # in batch order
    predictions = (np.concatenate([wanted for _, wanted in done]) if done
                   else np.asarray(expected if not callable(expected) else np.empty(0)))
    return Replay(len(lines), limits, tuple(outcome for outcome, _ in done), predictions)


def compare(batch: Batch, answer: bytes, expected: np.ndarray, output) -> BatchOutcome:
    """One batch's answer against the artifact's predictions for its rows (float32-exact, or the container's text)."""
    from modelops.serving import protocol

    if output.inference_output is not None:
        # The container's selectable CSV: one line per row, no final line break.
        wanted = protocol.render(expected, protocol.CSV, output).rstrip(b"\n").split(b"\n")
        got = answer.rstrip(b"\n").split(b"\n")
        if len(got) != len(wanted):
            return BatchOutcome(batch, error=f"answered {len(got):,} lines for {batch.rows:,} rows")
        same = np.array([a == b for a, b in zip(got, wanted)], dtype=bool)
        return _outcome(batch, same, 0.0)
    try:
        answered = protocol.read_predictions(answer)
    except ValueError as exc:
        return BatchOutcome(batch, error=f"answered something that is not CSV predictions ({exc})")
    if answered.shape != expected.shape:
        return BatchOutcome(batch, error=f"answered {answered.shape[0]:,} predictions for {batch.rows:,} rows")
    same = answered.astype(np.float32) == expected.astype(np.float32)
    same = same.all(axis=1) if same.ndim > 1 else same
    difference = float(np.max(np.abs(answered - expected))) if answered.size else 0.0
    return _outcome(batch, same, difference)


def _outcome(batch: Batch, same: np.ndarray, difference: float) -> BatchOutcome:
    differing = np.flatnonzero(~same)
    return BatchOutcome(batch, identical=int(same.sum()),
                        differing=tuple(int(batch.start + r) for r in differing[:KEPT_ROWS]),
                        differing_count=len(differing), max_abs_difference=difference)
