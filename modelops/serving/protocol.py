"""The SageMaker XGBoost container's inference protocol: request bodies in, predictions out, errors as statuses.

Requests: ``text/csv`` (rows of features, no header, no label; an empty cell is a missing value) or
``text/libsvm`` (``[label] index:value ...`` with 0-based feature indices, as XGBoost reads it).
Responses, by ``Accept``: ``text/csv`` (default; one prediction per line), ``application/json``
(``{"predictions": [{"score": x}, ...]}``) or ``application/jsonlines`` (``{"score": x}`` per line).
"""

from __future__ import annotations

import io
import json

import numpy as np

#: CSV bodies of at least this many bytes are read by pyarrow's multi-threaded parser (3.5x numpy's loadtxt on
#: 10,000 churn rows); below it numpy wins, pyarrow's cost per call and per column being larger (benchmarks/README.md).
ARROW_MIN_BYTES = 128 * 1024
#: Responses with at least this many predictions are written by pyarrow (a call costs ~17 us, a value ~0.1 us).
ARROW_MIN_PREDICTIONS = 64

CSV = "text/csv"
LIBSVM = "text/libsvm"
JSON = "application/json"
JSONLINES = "application/jsonlines"

_CONTENT_TYPES = {"text/csv": CSV, "text/libsvm": LIBSVM, "text/x-libsvm": LIBSVM}
_ACCEPT = {"text/csv": CSV, "text/*": CSV, "*/*": CSV, "application/json": JSON, "application/jsonlines": JSONLINES,
           "application/x-jsonlines": JSONLINES, "application/*": JSON}


class RequestError(Exception):
    """A request the endpoint refuses: carries the HTTP status and a message saying what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """The bare media type of a Content-Type or Accept item (parameters and case dropped)."""
    return (header or "").split(";", 1)[0].strip().lower()


def content_type(header: str | None) -> str:
    """The request format, or RequestError 415 naming the supported ones."""
    kind = _CONTENT_TYPES.get(media_type(header) or CSV)
    if kind is None:
        raise RequestError(415, f"unsupported Content-Type {header!r}; send text/csv or text/libsvm")
    return kind


def accept_type(header: str | None) -> str:
    """The response format chosen from Accept (highest q first, then order), or RequestError 406."""
    if not header or not header.strip():
        return CSV
    offers = []
    for position, item in enumerate(header.split(",")):
        kind, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        offers.append((-quality, position, kind.strip().lower()))
    for quality, _, kind in sorted(offers):
        if quality < 0 and kind in _ACCEPT:
            return _ACCEPT[kind]
    raise RequestError(406, f"cannot answer in {header!r}; accept text/csv, application/json or "
                            f"application/jsonlines")


def parse(body: bytes, kind: str, n_features: int) -> np.ndarray:
    """Rows of features as a float matrix (NaN for missing values).

    Raises:
        RequestError: 400 naming the row and column of a bad cell, or expected vs got features.
    """
    return parse_csv(body, n_features) if kind == CSV else parse_libsvm(body, n_features)


def parse_csv(body: bytes, n_features: int) -> np.ndarray:
    text = (body.replace(b"\r\n", b"\n") if b"\r" in body else body).strip(b"\n")  # replace copies: 3.5 ms at 4.5 MB
    rows = text.count(b"\n") + 1
    try:
        values = _read_csv(text, n_features)
    except ValueError:
        values = None  # a bad cell, a ragged row or an empty cell (a missing value): the careful path decides
    if values is not None and values.shape == (rows, n_features):
        return values
    # Slower, but names the row and column of what is wrong, and reads empty cells as missing values.
    lines = text.split(b"\n")
    expected_commas = n_features - 1
    for row, line in enumerate(lines, 1):
        if line.count(b",") != expected_commas:
            got = line.count(b",") + 1 if line.strip() else 0
            raise RequestError(400, f"row {row} has {got} values but the model expects {n_features} features "
                                    f"(CSV without header or label column)")
    return _parse_cells(lines).reshape(len(lines), n_features)


def _read_csv(text: bytes, n_features: int) -> np.ndarray:
    """The whole body in one call to a C parser. Raises ValueError on anything it cannot read."""
    if len(text) < ARROW_MIN_BYTES:
        return np.loadtxt(io.BytesIO(text), dtype=np.float64, delimiter=",", comments=None, ndmin=2)
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [str(i) for i in range(n_features)]
    table = pa_csv.read_csv(  # its errors (ArrowInvalid) are ValueErrors
        io.BytesIO(text), read_options=pa_csv.ReadOptions(column_names=names),
        parse_options=pa_csv.ParseOptions(quote_char=False, escape_char=False),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=[""],
                                              quoted_strings_can_be_null=False))
    if not table.num_rows:  # nothing but line breaks (pyarrow also breaks lines at a lone \r)
        raise ValueError("no rows")
    return table.combine_chunks().to_batches()[0].to_tensor(null_to_nan=True, row_major=True).to_numpy()


def _parse_cells(lines: list[bytes]) -> np.ndarray:
    values = []
    for row, line in enumerate(lines, 1):
        for column, cell in enumerate(line.split(b","), 1):
            cell = cell.strip()
            if not cell:
                values.append(np.nan)  # an empty cell is a missing value, as XGBoost reads CSV
                continue
            try:
                values.append(float(cell))
            except ValueError:
                shown = cell[:40].decode("utf-8", "replace")
                raise RequestError(400, f"row {row}, column {column}: {shown!r} is not a number") from None
    return np.array(values, dtype=np.float64)


def parse_libsvm(body: bytes, n_features: int) -> np.ndarray:
    lines = [line for line in body.replace(b"\r\n", b"\n").split(b"\n") if line.strip()]
    matrix = np.full((len(lines), n_features), np.nan)
    for row, line in enumerate(lines, 1):
        tokens = line.split()
        if tokens and b":" not in tokens[0]:
            tokens = tokens[1:]  # a label (ignored for inference)
        for token in tokens:
            index, sep, value = token.partition(b":")
            try:
                column = int(index)
                number = float(value)
            except ValueError:
                shown = token[:40].decode("utf-8", "replace")
                raise RequestError(400, f"row {row}: {shown!r} is not index:value") from None
            if not sep or not 0 <= column < n_features:
                raise RequestError(400, f"row {row}: feature index {column} is outside 0..{n_features - 1} (the "
                                        f"model expects {n_features} features, 0-based)")
            matrix[row - 1, column] = number
    return matrix


def render(predictions: np.ndarray, kind: str) -> bytes:
    """Predictions in the chosen response format.

    CSV gives each prediction as the shortest decimal that reads back as the same float32 (what XGBoost
    predicts), written by pyarrow from ARROW_MIN_PREDICTIONS on (2.7x Python's formatting at 10,000 rows).
    """
    if np.ndim(predictions) == 2:  # multi:softprob: a row of class probabilities per record
        return _render_rows(np.asarray(predictions, dtype=np.float32), kind)
    if kind in (JSON, JSONLINES):
        scores = np.asarray(predictions, dtype=np.float64).ravel().tolist()
        if kind == JSON:
            return json.dumps({"predictions": [{"score": s} for s in scores]}).encode()
        return "".join(json.dumps({"score": s}) + "\n" for s in scores).encode()
    scores = np.asarray(predictions, dtype=np.float32).ravel()
    if len(scores) < ARROW_MIN_PREDICTIONS:
        return ("\n".join([str(score) for score in scores]) + "\n").encode()  # numpy's float32 str is the shortest
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    out = io.BytesIO()
    pa_csv.write_csv(pa.table({"score": scores}), out, pa_csv.WriteOptions(include_header=False))
    return out.getvalue()


def _render_rows(rows: np.ndarray, kind: str) -> bytes:
    # Stopgap for 2-D answers so multiclass models serve (i14-data); the container's exact shapes are i15-parity's.
    if kind == JSON:
        return json.dumps({"predictions": [{"score": row} for row in rows.astype(np.float64).tolist()]}).encode()
    if kind == JSONLINES:
        return "".join(json.dumps({"score": row}) + "\n" for row in rows.astype(np.float64).tolist()).encode()
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()


def read_predictions(body: bytes, kind: str = CSV, rows: int | None = None) -> np.ndarray:
    """Client side: parse a response body back into an array of scores.

    Per-class probabilities (multi:softprob) come back as one row per record: a 2-D array. A CSV answer of one
    line with several values is one record's row only when ``rows`` is 1 (else a single line of scores).
    """
    if kind == JSON:
        return np.array([p["score"] for p in json.loads(body)["predictions"]], dtype=np.float64)
    if kind == JSONLINES:
        return np.array([json.loads(line)["score"] for line in body.splitlines() if line.strip()], dtype=np.float64)
    lines = [line.split(",") for line in body.decode().splitlines() if line.strip()]
    widths = {len(line) for line in lines}
    if len(widths) == 1 and widths != {1} and (len(lines) > 1 or rows == 1):
        return np.array(lines, dtype=np.float64)
    text = body.decode().replace(",", "\n").split()
    return np.array(text, dtype=np.float64)


def to_csv(rows: np.ndarray) -> bytes:
    """Client side: a feature matrix as a CSV request body (exact float round trip, NaN as an empty cell)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return "".join(",".join("" if v != v else repr(v) for v in row) + "\n" for row in rows.tolist()).encode()
