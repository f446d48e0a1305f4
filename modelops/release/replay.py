"""Held-out rows through a live endpoint: in batches within its limits, several at once, every answer compared.

What the deploy's answer check and the promotion gate share. The rows go as one CSV body cut at row boundaries
into batches of at most the endpoint's payload limit (``Endpoints.limits``: the container's ``MaxPayloadInMB``,
6 MB on SageMaker), cut by their encoded size rather than a row count, since rows can be wide; up to its
``MaxConcurrentTransforms`` batches are in flight at once (threads: boto3 clients are thread-safe). Each answer is
compared row by row with the artifact's offline prediction, so a failure names the batch and the rows.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

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


def split_batches(body: bytes, max_bytes: int) -> list[Batch]:
    """Cut a CSV body of one row per line into consecutive batches of whole rows, each at most ``max_bytes``.

    Rows stay in order; each batch takes as many rows as fit.

    Raises:
        PayloadTooLarge: one row alone is over ``max_bytes`` (naming the row and its size).
    """
    if not body:
        return []
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n")) + 1  # one past each row's last byte
    if not len(ends) or ends[-1] != len(body):
        ends = np.append(ends, len(body))  # a last row without its line break
    sizes = np.diff(ends, prepend=0)
    too_big = np.flatnonzero(sizes > max_bytes)
    if len(too_big):
        row = int(too_big[0])
        raise PayloadTooLarge(f"row {row:,} is {int(sizes[row]):,} bytes as CSV, over the {max_bytes:,} bytes one "
                              f"request to the endpoint may carry, so no batch can send it. Fix: fewer or narrower "
                              f"feature columns (model.yml data), or send this row in a batch transform job.")
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


def replay_rows(ops, endpoint: str, X: np.ndarray, expected: np.ndarray, output, *,
                inference_id: str | None = None, limits: EndpointLimits | None = None) -> Replay:
    """Send the rows ``X`` through ``endpoint`` in batches; compare each answer with ``expected`` row by row.

    Args:
        ops: the backend (``ops.endpoints.invoke`` and ``limits``).
        X: the held-out feature rows.
        expected: the artifact's offline predictions for them.
        output: the container's switches for the model (``protocol.Output``): with ``inference_output`` the
            answer must be, line for line, what the container writes for ``expected``.
        inference_id: sent with every request (data capture records it).
        limits: the endpoint's (default: ``ops.endpoints.limits(endpoint)``).

    Raises:
        PayloadTooLarge: a single row is over the payload limit.
        EndpointFailed: the endpoint cannot say its limits.
    """
    from modelops.serving.protocol import to_csv

    limits = limits or ops.endpoints.limits(endpoint)
    body = to_csv(X) if len(X) else b""
    batches = split_batches(body, limits.max_payload_bytes)

    def send(batch: Batch) -> BatchOutcome:
        try:
            answer = ops.endpoints.invoke(endpoint, body[batch.offset:batch.end], inference_id=inference_id)
        except EndpointFailed as exc:
            return BatchOutcome(batch, error=str(exc))
        return compare(batch, answer, expected[batch.start:batch.stop], output)

    with ThreadPoolExecutor(max_workers=max(1, min(limits.max_concurrency, len(batches)))) as pool:
        outcomes = tuple(pool.map(send, batches))  # in batch order
    return Replay(len(X), limits, outcomes)


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
