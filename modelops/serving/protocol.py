"""The SageMaker XGBoost container 3.2-0's inference protocol: request bodies in, answers out, errors as statuses.

Every rule here is the container's (modelops/container.py names the source read; docs/container-parity.md
has the table), including the ones that surprise: no Content-Type means libsvm, the CSV delimiter is sniffed
from the first line, a row shorter than the model is predicted with its last features missing, libsvm indices
that all start at 1 or more are shifted down by one, ``Accept`` is one media type (no lists, wildcards or
q-values), and JSON lines or RecordIO answers need ``SAGEMAKER_INFERENCE_OUTPUT``. Where the container's
answer can hide a client's mistake, it is kept and a warning is logged (once per kind and shape; /-/status
counts them). The fast paths (numpy's and pyarrow's CSV readers, pyarrow's number formatting) are only taken
where they give exactly the container's answer, and fall back to its own algorithm otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelops.container import (
    ACCEPTS,
    CONTENT_TYPES,
    CSV,
    DEFAULT_ACCEPT_ENV,
    INFERENCE_OUTPUT_ENV,
    JSON,
    JSONLINES,
    LIBSVM,
    OUTPUT_KEYS,
    RECORDIO,
    UNSERVED_CONTENT_TYPES,
)
from modelops.serving import recordio

__all__ = ["CSV", "JSON", "JSONLINES", "LIBSVM", "RECORDIO", "Output", "RequestError", "accept_type",
           "content_type", "fit", "parse", "read_predictions", "refuse_infinities", "render", "response_content_type",
           "to_csv", "to_recordio"]

log = logging.getLogger("modelops.serving")

#: CSV bodies of at least this many bytes are read by pyarrow's multi-threaded parser (3.5x numpy's loadtxt on
#: 10,000 churn rows); below it numpy wins, pyarrow's cost per call and per column being larger (benchmarks/README.md).
ARROW_MIN_BYTES = 128 * 1024
#: pyarrow's cost grows with the columns: past this many, numpy reads faster (benchmarks/README.md, section 8).
ARROW_MAX_COLUMNS = 1000
#: CSV answers with at least this many values are formatted by pyarrow, fewer by Python's repr: where the two
#: CPU times per answer cross (benchmarks/README.md, section 8).
ARROW_MIN_PREDICTIONS = 300
#: Delimiters whose fast readers were checked against the container's split-and-convert (tests/test_protocol.py).
_FAST_DELIMITERS = {",": b",", ";": b";", "\t": b"\t"}
_SNIFF_CHARS = 512  # encoder.csv_to_dmatrix sniffs the first line's first 512 characters
#: The smallest magnitude a float32 cast rounds to infinity (half an ulp above the largest float32).
FLOAT32_OVERFLOW = np.float64(2**128 - 2**103)  # a float64 scalar: float32 values are compared as float64

#: Warnings given so far, by kind (shown by GET /-/status).
WARNINGS: Counter = Counter()
_warned: set = set()


class RequestError(Exception):
    """A request the endpoint refuses: carries the HTTP status and a message saying what to fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# -- headers -----------------------------------------------------------------------------------------------------


def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Type or Accept value split as ``cgi.parse_header`` splits it, which the container calls.

    The main value is everything before the first ``;`` outside quotes, stripped but neither lowercased nor
    split at commas: ``application/json, text/csv`` is one (unsupported) media type to the container.
    """
    parts, start, position = [], 0, 0
    while True:
        end = value.find(";", position)
        segment = value[start:end if end >= 0 else len(value)]
        if end >= 0 and (segment.count('"') - segment.count('\\"')) % 2:
            position = end + 1  # the ; is inside a quoted string: look for the next one
            continue
        parts.append(segment.strip())
        if end < 0:
            break
        start = position = end + 1
    params = {}
    for part in parts[1:]:
        name, equals, text = part.partition("=")
        if not equals:
            continue
        text = text.strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1].replace("\\\\", "\\").replace('\\"', '"')
        params[name.strip().lower()] = text
    return parts[0], params


def content_type(header: str | None) -> str:
    """The request format (CSV, LIBSVM or RECORDIO), or RequestError 415.

    A request without Content-Type is libsvm to the container (data_utils.get_content_type).
    """
    if header is None:
        return LIBSVM
    media, params = parse_header(header.lower())
    kind = CONTENT_TYPES.get(media)
    if kind == CSV and params.get("label_size", "1") != "1":
        raise RequestError(415, f"{header} is not an accepted csv ContentType: label_size must be 1 (requests carry "
                                f"no label column). Fix: send Content-Type: text/csv")
    if kind is None:
        served = "; it reads parquet only for training" if media in UNSERVED_CONTENT_TYPES else ""
        raise RequestError(415, f"unsupported Content-Type {header!r}: the SageMaker XGBoost container serves "
                                f"text/csv, text/libsvm and application/x-recordio-protobuf{served}. Fix: send "
                                f"one of those")
    return kind


def accept_type(header: str | None, default: str = CSV) -> str:
    """The answer format, as serve._parse_accept chooses it, or RequestError 406.

    ``Accept`` must be exactly one supported media type (any case, parameters ignored): a list, a wildcard
    other than ``*/*`` or a q-value is not negotiated. No Accept or ``*/*`` gives ``default``
    (SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else text/csv).
    """
    media, _ = parse_header(header or "")
    if not media or media == "*/*":
        return default
    if media.lower() not in ACCEPTS:
        raise RequestError(406, f"Accept type {media} is not supported. Please use supported accept types: "
                                f"{list(ACCEPTS)}. (The container takes one media type, not a list or a pattern; "
                                f"q-values are ignored.) Fix: send exactly one of them")
    return media.lower()


def response_content_type(accept: str) -> str:
    """The answer's Content-Type: Flask adds ``; charset=utf-8`` to text/* types only."""
    return f"{accept}; charset=utf-8" if accept.startswith("text/") else accept


# -- request bodies ------------------------------------------------------------------------------------------------


def parse(body: bytes, kind: str):
    """The rows of a request body: a 2-D float array, or a scipy CSR matrix for sparse formats.

    Raises:
        RequestError: 415 (as the container answers any body it cannot read), naming what is wrong.
    """
    reader = {CSV: parse_csv, LIBSVM: parse_libsvm, RECORDIO: parse_recordio}[kind]
    try:
        rows = reader(body)
    except RequestError:
        raise
    except Exception as exc:  # the container answers 415 to whatever goes wrong while reading a body
        raise RequestError(415, f"Loading {kind} data failed: {type(exc).__name__}: {exc}") from None
    refuse_infinities(rows, kind)
    return rows


def refuse_infinities(rows, kind: str = CSV) -> None:
    """The container's DMatrix refuses a value that is infinite as a float32 (``missing`` is NaN): a 415.

    Compared with the float32 rounding threshold rather than cast, first through the extremes alone (``fmax`` and
    ``fmin`` pass over missing values, so a body with empty cells is not sent to the full check; no copy of a large
    body): ~6 us on a single row where the cast took 18 us.
    """
    values = rows if isinstance(rows, np.ndarray) else rows.data
    if not values.size:
        return
    flat = values.reshape(-1)
    high, low = np.fmax.reduce(flat), np.fmin.reduce(flat)
    if (high < FLOAT32_OVERFLOW and low > -FLOAT32_OVERFLOW) or (high != high and low != low):  # or all missing
        return
    infinite = np.abs(values) >= FLOAT32_OVERFLOW
    if infinite.any():
        where = np.argwhere(infinite)[0] if isinstance(rows, np.ndarray) else None
        cell = f"row {where[0] + 1}, column {where[1] + 1}" if where is not None else "a value"
        raise RequestError(415, f"Loading {kind} data failed: {cell} is infinite or too large for a float32, which "
                                f"XGBoost refuses (it reads NaN as missing, not inf). Fix: send a finite value, or "
                                f"NaN / an empty cell for a missing one")


def fit(rows, n_features: int):
    """Rows as the model takes them, with the container's rule for widths.

    XGBoost predicts a matrix narrower than the model with the absent (last) features missing, and refuses a
    wider one. A dense row that is too short is kept so and logged: it usually means a dropped column.

    Raises:
        RequestError: 400 for rows wider than the model.
    """
    width = rows.shape[1]
    if width > n_features:
        raise RequestError(400, f"Unable to evaluate payload provided: the rows have {width} columns but the model "
                                f"has {n_features} features. Fix: send the features only, in training order (no "
                                f"label or id column)")
    if width == n_features:
        return rows
    if not isinstance(rows, np.ndarray):  # sparse: absent features are missing by definition
        rows = rows.copy()
        rows.resize((rows.shape[0], n_features))
        return rows
    _warn("short_rows", width, f"a request had rows of {width} values for a model of {n_features} features: "
                               f"predicted with the last {n_features - width} feature(s) missing, as the SageMaker "
                               f"XGBoost container does. If a column was dropped by mistake, these predictions are "
                               f"wrong. Fix: send all {n_features} features (an empty cell is a missing value)")
    padded = np.full((rows.shape[0], n_features), np.nan, dtype=np.float64)
    padded[:, :width] = rows
    return padded


def parse_csv(body: bytes) -> np.ndarray:
    """Rows of a CSV body, as encoder.csv_to_dmatrix reads them.

    The body is stripped of surrounding whitespace and split at ``\\n``; the delimiter is sniffed from the
    first line (csv.Sniffer; a letter or digit means ``,``); an empty cell is a missing value; every row must
    have as many cells as the first.
    """
    text = body.strip()
    if not text.isascii():
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError(415, f"Loading csv data failed: the body is not UTF-8 text ({exc}). Fix: send CSV "
                                    f"text") from None
        return _parse_cells(decoded, csv_delimiter(decoded.split("\n", 1)[0][:_SNIFF_CHARS]))
    end = text.find(b"\n")
    delimiter = csv_delimiter(text[:end if 0 <= end < _SNIFF_CHARS else _SNIFF_CHARS].decode("ascii"))
    if delimiter in _FAST_DELIMITERS:
        values = _read_fast(text, delimiter)
        if values is not None:
            return values
    return _parse_cells(text.decode("ascii"), delimiter)


def csv_delimiter(sample: str) -> str:
    """The delimiter the container uses for a body whose first line (up to 512 characters) is ``sample``.

    A line with a comma and no quote character is sniffed as ``,`` (every character present is a candidate
    and ``,`` comes first in the sniffer's preferences), so the sniffer only runs for other lines.
    """
    if "," in sample and '"' not in sample and "'" not in sample:
        return ","
    try:
        sniffed = csv.Sniffer().sniff(sample).delimiter
    except csv.Error as exc:
        raise RequestError(415, f"Loading csv data failed: {exc} from the first line {sample[:40]!r}. Fix: send "
                                f"comma-separated numbers") from None
    return "," if sniffed.isalnum() else sniffed


def _read_fast(text: bytes, delimiter: str) -> np.ndarray | None:
    """The whole body in one call to a C parser, or None where it might differ from the container's reading."""
    if b"\r" in text:
        # A cell's trailing \r is whitespace to float(), so dropping it changes nothing, except for a cell that
        # was only "\r": empty now (a missing value), but not a number to the container.
        text = text.replace(b"\r\n", b"\n")
        if b"\r" in text or _FAST_DELIMITERS[delimiter] + b"\n" in text:
            return None  # and a lone \r: numpy and pyarrow end a line there, the container does not
    rows = text.count(b"\n") + 1
    try:
        values = _read_csv(text, delimiter)
    except ValueError:
        return None  # a bad or empty cell, a ragged row: the container's own reading decides
    return values if values is not None and values.shape[0] == rows else None  # blank lines are skipped by both


def _read_csv(text: bytes, delimiter: str) -> np.ndarray | None:
    end = text.find(b"\n")
    width = text[:end if end >= 0 else len(text)].count(_FAST_DELIMITERS[delimiter]) + 1
    if len(text) < ARROW_MIN_BYTES or width > ARROW_MAX_COLUMNS:
        return np.loadtxt(io.BytesIO(text), dtype=np.float64, delimiter=delimiter, comments=None, ndmin=2)
    if b"(" in text:
        return None  # pyarrow reads 'nan(...)' as NaN; float() refuses it
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    names = [str(i) for i in range(width)]
    table = pa_csv.read_csv(  # its errors (ArrowInvalid) are ValueErrors
        io.BytesIO(text), read_options=pa_csv.ReadOptions(column_names=names),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False),
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()), null_values=[""],
                                              quoted_strings_can_be_null=False))
    if not table.num_rows:
        return None
    return table.combine_chunks().to_batches()[0].to_tensor(null_to_nan=True, row_major=True).to_numpy()


def _parse_cells(text: str, delimiter: str) -> np.ndarray:
    """The container's own reading: split, empty cells as "nan", numpy's conversion; errors name the cell."""
    cells = [["nan" if cell == "" else cell for cell in line.split(delimiter)] for line in text.split("\n")]
    try:
        return np.array(cells).astype(float)
    except ValueError as exc:
        problem = exc
    shown = {",": "comma", ";": "semicolon", "\t": "tab", " ": "space"}.get(delimiter, repr(delimiter))
    for row, line in enumerate(cells, 1):
        if len(line) != len(cells[0]):
            raise RequestError(415, f"Loading csv data failed: row {row} has {len(line)} values but row 1 has "
                                    f"{len(cells[0])} ({shown}-separated, as sniffed from row 1). Fix: send rows "
                                    f"of equal length (an empty cell is a missing value)")
    for row, line in enumerate(cells, 1):
        for column, cell in enumerate(line, 1):
            try:
                float(cell)
            except ValueError:
                raise RequestError(415, f"Loading csv data failed: row {row}, column {column}: {cell[:40]!r} is not "
                                        f"a number ({shown}-separated, as sniffed from row 1). Fix: send numbers "
                                        f"only: no header row, no label or text column") from None
    raise RequestError(415, f"Loading csv data failed: {problem}. Fix: send comma-separated numbers")


def parse_libsvm(body: bytes):
    """Rows of a libsvm body as serve_utils._get_sparse_matrix_from_libsvm reads them (a CSR matrix).

    Lines are split at single spaces; any item with a ``:`` is ``index:value`` (a label is skipped);
    duplicate indices add up. When every index in the body is at least 1, all are read as 1-based and
    shifted down by one: that is logged, since a 0-based body that lacks feature 0 is misread so.
    """
    try:
        text = body.strip().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(415, f"Loading libsvm data failed: the body is not UTF-8 text ({exc})") from None
    rows, columns, values = [], [], []
    for row, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                index, value = item.split(":")[:2]
                try:
                    columns.append(int(index))
                except ValueError:
                    raise RequestError(415, f"Loading libsvm data failed: row {row + 1}: {item[:40]!r} is not "
                                            f"index:value. Fix: send 'label index:value ...' lines") from None
                rows.append(row)
                values.append(value)
    column = np.array(columns).astype(int)
    if len(column) and column.min() >= 1:
        _warn("libsvm_one_based", None, f"a libsvm request's indices all start at {column.min()} or more, so they "
                                        f"were read as 1-based and shifted down by one, as the SageMaker XGBoost "
                                        f"container 3.2-0 does. A 0-based request whose rows all lack feature 0 is "
                                        f"misread this way. Fix: send 0-based indices with feature 0 present "
                                        f"(0:nan marks it missing)")
        column = column - 1
    try:
        data = np.array(values).astype(float)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise RequestError(415, f"Loading libsvm data failed: {bad[:40]!r} is not a number. Fix: send "
                                f"index:value pairs") from None
    from scipy.sparse import csr_matrix

    try:
        return csr_matrix((data, (np.array(rows), column)))
    except ValueError as exc:
        problem = "no index:value pair" if not len(data) else str(exc)
        raise RequestError(415, f"Loading libsvm data failed: {problem}. Fix: send 'label index:value ...' lines, or "
                                f"Content-Type: text/csv for CSV (a request without Content-Type is read as libsvm)"
                           ) from None


def parse_recordio(body: bytes):
    """Rows of a RecordIO-protobuf body as recordio_protobuf.read_recordio_protobuf reads them.

    Each record's ``features["values"]`` tensor is a row: dense, or sparse when it has keys (its width from
    ``shape``, else the largest key + 1). Records without it are skipped; labels are ignored.
    """
    rows, labels, sparse = [], 0, False
    try:
        for record in recordio.frames(body):
            tensor = recordio.record_values(record)
            if tensor is None:
                continue
            label = recordio.record_values(record, map_field=2)
            labels += len(label.array()) if label is not None else 0
            values = tensor.array()
            if tensor.keys:
                from scipy.sparse import csr_matrix

                sparse = True
                keys = np.array(tensor.keys, dtype=np.uint64).astype(np.int64)
                width = int(tensor.shape[0]) if tensor.shape else int(keys.max()) + 1
                rows.append(csr_matrix((values, keys, [0, len(keys)]), shape=(1, width)))
            else:
                rows.append(values.reshape(1, -1))
        if not rows:
            raise ValueError("No records found in RecordIO-Protobuf data")
        if labels % len(rows):  # the container builds a DMatrix with them, which checks their number
            raise ValueError(f"{labels} label values for {len(rows)} records (a multiple is needed)")
        if sparse:
            from scipy.sparse import vstack

            return vstack(rows).tocsr()
        matrix = np.vstack(rows)
    except ValueError as exc:  # recordio.DecodeError, ragged rows, keys and values of different lengths
        raise RequestError(415, f"Loading recordio-protobuf data failed: {exc}. Fix: send records with a "
                                f"features['values'] tensor of equal length (the SageMaker SDK's RecordSerializer "
                                f"writes them)") from None
    return matrix if matrix.dtype.kind == "f" else matrix.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# -- answers -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """How one model's answers are written: the container's switches and what they need from the booster."""

    inference_output: tuple[str, ...] | None = None  # SAGEMAKER_INFERENCE_OUTPUT keys; None: scores only
    default_accept: str = CSV  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    objective: str = ""
    num_class: str = ""

    @classmethod
    def of(cls, booster, environ: Mapping[str, str]) -> Output:
        """The settings for ``booster`` under the container environment ``environ`` (read as the container does)."""
        config = json.loads(booster.save_config())["learner"]
        selected = environ.get(INFERENCE_OUTPUT_ENV)
        return cls(tuple(selected.replace(" ", "").lower().split(",")) if selected is not None else None,
                   environ.get(DEFAULT_ACCEPT_ENV, CSV), config["objective"]["name"],
                   str(config["learner_model_param"].get("num_class", "")))


SCORES = Output()


def render(predictions: np.ndarray, accept: str, output: Output = SCORES) -> bytes:
    """Predictions in the container's format for ``accept``: 1-D, or rows x classes for multi:softprob.

    Raises:
        RequestError: 500 where the container fails (JSON lines or RecordIO without SAGEMAKER_INFERENCE_OUTPUT,
            an objective that has no selectable output).
    """
    if output.inference_output is not None:
        return _render_selected(predictions, accept, output)
    if accept == JSON:
        return json.dumps({"predictions": [{"score": score} for score in predictions.tolist()]}).encode()
    if accept == CSV:
        return _csv_scores(np.asarray(predictions))
    raise RequestError(500, f"the SageMaker XGBoost container 3.2-0 cannot answer {accept} without "
                            f"{INFERENCE_OUTPUT_ENV} (it fails with 500 Internal Server Error; so does this endpoint). "
                            f"Fix: ask for text/csv or application/json, or set serving.inference_output in model.yml")


def _csv_scores(values: np.ndarray) -> bytes:
    """One line per row (values of a row joined by commas), each value as Python's repr of it as a float64.

    That is the container's format: ``str`` of numpy float64 (csv.writer over ``np.array(preds.tolist())``),
    e.g. 19.63957977294922 for the float32 19.63958. pyarrow formats such numbers with the same shortest
    digits; Python's repr is used where their styles differ (integers, below 1e-4, NaN and infinities).
    """
    if values.size < ARROW_MIN_PREDICTIONS:
        if values.ndim == 1:
            return ("\n".join(map(repr, values.tolist())) + "\n").encode()
        return "".join(",".join(map(repr, row)) + "\n" for row in values.tolist()).encode()
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    wide = values.astype(np.float64).reshape(len(values), -1)
    with np.errstate(invalid="ignore"):
        plain = np.isfinite(wide) & (wide != np.floor(wide)) & (np.abs(wide) >= 1e-4)
    columns = []
    for j in range(wide.shape[1]):
        column = pa.array(wide[:, j])
        if not plain[:, j].all():
            odd = ~plain[:, j]
            column = pc.replace_with_mask(pc.cast(column, pa.string()), pa.array(odd),
                                          pa.array([repr(v) for v in wide[odd, j].tolist()], pa.string()))
        columns.append(column)
    out = io.BytesIO()
    pa_csv.write_csv(pa.table(columns, names=[str(j) for j in range(len(columns))]), out,
                     pa_csv.WriteOptions(include_header=False, quoting_style="none"))
    return out.getvalue()


def _render_selected(predictions: np.ndarray, accept: str, output: Output) -> bytes:
    """serve._handle_selectable_inference_response: the keys of SAGEMAKER_INFERENCE_OUTPUT, per row."""
    selected = selected_predictions(predictions, output.inference_output, output.objective, output.num_class)
    if accept == JSON:
        return json.dumps({"predictions": selected}).encode()
    if accept == JSONLINES:
        return "".join(json.dumps(row) + "\n" for row in selected).encode()
    if accept == RECORDIO:
        return recordio.write_label_records(selected)
    if accept == CSV:
        lines = (",".join(f'"{row[key]}"' if isinstance(row[key], list) else str(row[key])
                          for key in output.inference_output) for row in selected)
        return "\n".join(lines).encode()  # no final line break: the container's, outside batch transform
    raise RequestError(500, f"Cannot encode selected predictions into accept type '{accept}'. Fix: set "
                            f"serving.default_accept to one of {list(ACCEPTS)}")


def selected_predictions(predictions: np.ndarray, keys: tuple[str, ...], objective: str,
                         num_class: str = "") -> list[dict]:
    """serve_utils.get_selected_predictions: per row, the selected keys the objective answers, NaN for the others.

    Keys come in the container's fixed order, then those the objective does not answer (NaN) in the order
    given (the container's order for those follows a Python set: it varies from process to process).
    """
    if objective not in OUTPUT_KEYS:
        raise RequestError(500, f"Objective `{objective}` unsupported for selectable inference predictions. Fix: "
                                f"remove serving.inference_output from model.yml (objectives that support it: "
                                f"{', '.join(OUTPUT_KEYS)})")
    valid = set(keys) & set(OUTPUT_KEYS[objective])
    invalid = list(dict.fromkeys(k for k in keys if k not in OUTPUT_KEYS[objective]))
    if invalid:
        _warn("inference_output_keys", (objective, tuple(invalid)),
              f"{INFERENCE_OUTPUT_ENV} asks for {invalid}, which objective {objective} does not answer: they are "
              f"NaN in every answer. Fix: use only {list(OUTPUT_KEYS[objective])}")
    labels = ([0, 1] if objective.startswith("binary:") else
              list(range(int(num_class))) if objective.startswith("multi:") and num_class else np.nan)
    rows = []
    for raw in predictions:
        row = {}
        if "predicted_label" in valid:
            row["predicted_label"] = (raw.item() if objective in ("binary:hinge", "multi:softmax") else
                                      int(raw > 0.5) if objective == "binary:logistic" else
                                      int(raw > 0) if objective == "binary:logitraw" else np.argmax(raw).item())
        if "labels" in valid:
            row["labels"] = labels
        if "probability" in valid:
            row["probability"] = max(raw).item() if objective == "multi:softprob" else raw.item()
        if "probabilities" in valid:
            row["probabilities"] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
        if "raw_score" in valid:
            row["raw_score"] = max(raw).item() if objective == "multi:softprob" else raw.item()
        if "raw_scores" in valid:
            row["raw_scores"] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
        if "predicted_score" in valid:
            row["predicted_score"] = raw.item()
        for key in invalid:
            row[key] = np.nan
        rows.append(row)
    return rows


def _warn(kind: str, detail, message: str) -> None:
    """Log a warning the first time a kind of it is seen with this detail; count every occurrence."""
    WARNINGS[kind] += 1
    if (kind, detail) not in _warned and len(_warned) < 1000:
        _warned.add((kind, detail))
        log.warning("%s (logged once; GET /-/status counts them)", message)


# -- client side -------------------------------------------------------------------------------------------------


def read_predictions(body: bytes, kind: str = CSV) -> np.ndarray:
    """Client side: the scores of an answer given without SAGEMAKER_INFERENCE_OUTPUT (text/csv or application/json).

    Returns:
        One score per row, or rows x classes for multi:softprob.
    """
    if kind == JSON:
        return np.array([p["score"] for p in json.loads(body)["predictions"]], dtype=np.float64)
    if kind != CSV:
        raise ValueError(f"scores are answered as {CSV} or {JSON}, not {kind}")
    lines = body.decode().split()
    if lines and "," in lines[0]:
        return np.array([line.split(",") for line in lines], dtype=np.float64)
    return np.array(lines, dtype=np.float64)


def to_csv(rows: np.ndarray) -> bytes:
    """Client side: a feature matrix as a CSV request body (exact float round trip, NaN as an empty cell)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return "".join(",".join("" if v != v else repr(v) for v in row) + "\n" for row in rows.tolist()).encode()


def to_recordio(rows: np.ndarray) -> bytes:
    """Client side: a feature matrix as an application/x-recordio-protobuf request body (dense records)."""
    return recordio.write_dense(rows)
