"""What an endpoint was asked and answered in a window: the window, the version it served and its baseline, and
the captured records read back as the monitored features (a malformed record is reported and skipped)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from modelops.backends.base import Backend
from modelops.config import ModelConfig
from modelops.entities import PRODUCTION_VARIANT, PackageVersion
from modelops.errors import ConfigError, EndpointFailed, StoreError
from modelops.monitoring.baseline import (
    Baseline,
    MonitoredFeature,
    monitored_features,
    prediction_feature,
    read_baseline,
)
from modelops.release.deploy import CHECK_INFERENCE_ID

#: Rows read at most from one window (the newest are left out past it, and the report says so).
MAX_ROWS = 1_000_000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- the window ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The inference times a monitoring run reads: ``since`` <= time < ``until`` (UTC)."""

    since: datetime
    until: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    def describe(self) -> str:
        return f"{self.since:%Y-%m-%d %H:%M:%S} to {self.until:%Y-%m-%d %H:%M:%S} UTC"


def monitoring_window(since: str | None = "24h", until: str | None = None, *, now: datetime | None = None) -> Window:
    """The window from ``since`` (a duration back from now, e.g. ``24h``, ``30m``, ``7d``; an ISO 8601 time, UTC
    unless it says otherwise; ``all``) to ``until`` (an ISO 8601 time; None: now).

    Raises:
        ConfigError: a time that cannot be read, or a window that ends before it starts.
    """
    now = now or datetime.now(UTC)
    end = _moment(until, now, "until") if until else now
    text = (since or "24h").strip()
    start = datetime.fromtimestamp(0, UTC) if text == "all" else _moment(text, end, "since")
    if start >= end:
        raise ConfigError(f"the monitoring window starts at {start:%Y-%m-%dT%H:%M:%SZ}, not before its end "
                          f"{end:%Y-%m-%dT%H:%M:%SZ}. Fix: pass an earlier --since or a later --until.")
    return Window(start, end)


def _moment(text: str, now: datetime, what: str) -> datetime:
    duration = _DURATION.match(text)
    if duration:
        return now - timedelta(**{_UNITS[duration.group(2)]: float(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--{what} {text!r} is neither a duration nor a time. Fix: pass a duration back from now "
                          f"(30m, 24h, 7d), an ISO 8601 time (2026-01-02T03:00Z), or all.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the served version and its baseline -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """The version an endpoint serves (or was told to check against), its baseline and its feature layout."""

    endpoint: str
    package: PackageVersion
    baseline: Baseline
    features: tuple[MonitoredFeature, ...]
    prediction: MonitoredFeature
    n_features: int

    def _repr_markdown_(self) -> str:
        return (f"**{self.endpoint}** serves {self.package.label}; its baseline: {len(self.features)} monitored "
                f"features read from {self.n_features} model columns, and the {self.prediction.name}.\n\n"
                f"{self.baseline._repr_markdown_()}")


def served_model(ops: Backend, config: ModelConfig, *, endpoint: str | None = None,
                 version: int | None = None) -> ServedModel:
    """The version to check the endpoint's traffic against: the one it serves now, or ``version``.

    Raises:
        EndpointFailed: the endpoint serves nothing and no version was named.
        RegistryError: no such version. StoreError: it records no baseline (trained before baselines existed).
        ConfigError: model.yml names a feature under monitoring.drift.features that the model does not have.
    """
    from modelops.data.datasets import package_dataset

    endpoint = endpoint or config.name
    if version is None:
        status = ops.endpoints.status(endpoint)
        if status is None or status.version is None:
            raise EndpointFailed(f"endpoint {endpoint!r} serves no version, so there is nothing to monitor. Fix: "
                                 f"deploy it (`python -m ci deploy {folder_name(config)}`), or name the version whose "
                                 f"baseline to use (--version N).")
        version = status.version
    package = ops.registry.get(config.name, int(version))
    baseline = read_baseline(ops.store, package.baselines)
    encoding = package_dataset(ops.store, config, package).feature_encoding
    features = tuple(monitored_features(encoding))
    prediction = prediction_feature(config)
    known = [f.name for f in features] + [prediction.name]
    unknown = [name for name in config.monitoring.drift.features if name not in known]
    if unknown:
        raise ConfigError(f"model.yml monitoring.drift.features names {unknown}, which {package.label} does not have "
                          f"(its monitored features: {known}). Fix: correct the names (a one-hot group goes by its "
                          f"column's name).")
    return ServedModel(endpoint, package, baseline, features, prediction, len(encoding.feature_names))


# -- reading what was captured ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A capture file, or one record in it, that could not be used, and why."""

    uri: str
    line: int | None  # None: the whole file
    reason: str


@dataclass(frozen=True)
class CapturedData:
    """The rows an endpoint was asked to predict in a window, with its answers, read from its capture files."""

    endpoint: str
    destination: str
    window: Window
    files: int
    records: int  # capture records in the window that were used
    rows: np.ndarray = field(repr=False)  # the model's columns (a row narrower than the model: NaN-padded)
    event_ids: tuple[str, ...] = field(repr=False)  # per row: the record's inferenceId, else its eventId
    scores: np.ndarray | None = field(repr=False)  # per row: the answer's scores (NaN where unreadable)
    narrow_rows: dict[int, int] = field(default_factory=dict)  # width -> rows narrower than the model
    wide_rows: dict[int, int] = field(default_factory=dict)  # width -> rows wider than the model (left out)
    skipped: tuple[Skipped, ...] = ()
    outside_window: int = 0
    notes: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def skipped_table(self) -> pd.DataFrame:
        """What could not be read, by file and line, and why."""
        return pd.DataFrame([{"file": s.uri, "line": s.line if s.line is not None else "(whole file)",
                              "reason": s.reason} for s in self.skipped], columns=["file", "line", "reason"])

    def _repr_markdown_(self) -> str:
        files = f"{self.files} file" if self.files == 1 else f"{self.files} files"
        lines = [f"**{_records(self.records).replace('record', 'capture record')}, {self.n_rows} rows** of "
                 f"{self.endpoint} from {files} under `{self.destination}`, {self.window.describe()}."]
        if self.skipped:
            lines.append(f"**{len(self.skipped)} records or files skipped** (malformed, truncated or unreadable; "
                         f"listed below).")
        lines += [f"- {note}" for note in self.notes]
        return "\n\n".join(lines)


class _BadRecord(Exception):
    """A capture record that cannot be used (its reason is the message)."""


def read_capture(ops: Backend, config: ModelConfig, served: ServedModel, *, since: str | None = "24h",
                 until: str | None = None, max_rows: int = MAX_ROWS) -> CapturedData:
    """The requests ``served.endpoint`` answered in the window, from its capture files in the backend's store.

    Raises:
        ConfigError: data capture is off in model.yml and nothing was captured, or the window cannot be read.
        StoreError: the capture folder cannot be listed (one unreadable file is skipped, not raised).
    """
    from modelops.serving.capture import capture_uri

    window = monitoring_window(since, until)
    destination = capture_uri(ops.store, config.name)
    prefix = f"{destination}/{served.endpoint}/{PRODUCTION_VARIANT}"
    objects = [o for o in ops.store.list_objects(prefix) if _may_hold(o.uri, prefix, window)]
    reader = _Reader(config, served, window, max_rows)
    for listed in objects:
        if reader.full:
            break
        try:
            data = ops.store.get_bytes(listed.uri)
        except StoreError as exc:
            reader.skipped.append(Skipped(listed.uri, None, f"unreadable: {exc}"))
            continue
        reader.read_file(listed.uri, data)
    if not reader.records and not config.monitoring.data_capture.enabled:
        raise ConfigError(f"nothing was captured for {served.endpoint} under {prefix}, and data capture is off for "
                          f"{config.name}. Fix: set monitoring.data_capture.enabled: true in "
                          f"{folder_name(config)}/model.yml, then train and deploy the version that has it.")
    return reader.result(served.endpoint, destination, len(objects))


def _may_hold(uri: str, prefix: str, window: Window) -> bool:
    """Whether a capture object's hour folder (``.../yyyy/mm/dd/hh/name``) overlaps the window (unknown: yes)."""
    parts = uri[len(prefix):].strip("/").split("/")
    try:
        hour = datetime(*map(int, parts[:4]), tzinfo=UTC)
    except (TypeError, ValueError):
        return True
    return hour < window.until and hour + timedelta(hours=1) > window.since


class _Reader:
    """Accumulates the rows and answers of capture files (one instance per monitoring run)."""

    def __init__(self, config: ModelConfig, served: ServedModel, window: Window, max_rows: int):
        self.config, self.served, self.window, self.max_rows = config, served, window, max_rows
        self.rows: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.ids: list[str] = []
        self.n_rows = self.records = self.outside = self.checks = 0
        self.narrow: dict[int, int] = {}
        self.wide: dict[int, int] = {}
        self.skipped: list[Skipped] = []
        self.unread_answers: dict[str, int] = {}

    @property
    def full(self) -> bool:
        return self.n_rows >= self.max_rows

    def read_file(self, uri: str, data: bytes) -> None:
        lines = data.split(b"\n")
        truncated = bool(lines[-1].strip())  # a last line without its line break: cut short, or being written
        for number, line in enumerate(lines, 1):
            if not line.strip() or self.full:
                continue
            try:
                self.read_record(line)
            except _BadRecord as exc:
                reason = str(exc)
                if truncated and number == len(lines):
                    reason = f"truncated: the file ends in the middle of a record ({reason})"
                self.skipped.append(Skipped(uri, number, reason))

    def read_record(self, line: bytes) -> None:
        try:
            record = json.loads(line)
            metadata = record["eventMetadata"]
            captured = record["captureData"]
            moment = datetime.fromisoformat(metadata["inferenceTime"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _BadRecord(f"not a capture record: {type(exc).__name__}: {str(exc)[:120]}") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if moment not in self.window:
            self.outside += 1
            return
        if str(metadata.get("inferenceId") or "").startswith(CHECK_INFERENCE_ID):
            self.checks += 1
            return
        if not isinstance(captured, dict) or "endpointInput" not in captured:
            raise _BadRecord("the record has no endpointInput (capture of requests is off?)")
        request = captured["endpointInput"]
        rows = self._rows(_body(request, "endpointInput"), request.get("observedContentType"))
        width = rows.shape[1]
        if width > self.served.n_features:
            self.wide[width] = self.wide.get(width, 0) + len(rows)
            return
        if width < self.served.n_features:
            self.narrow[width] = self.narrow.get(width, 0) + len(rows)
            padded = np.full((len(rows), self.served.n_features), np.nan)
            padded[:, :width] = rows
            rows = padded
        self.rows.append(rows)
        self.scores.append(self._scores(captured.get("endpointOutput"), len(rows)))
        event = str(metadata.get("inferenceId") or metadata.get("eventId") or "")
        self.ids += [event] * len(rows)
        self.n_rows += len(rows)
        self.records += 1

    def _rows(self, body: bytes, content_type: str | None) -> np.ndarray:
        from modelops.serving import protocol

        try:
            rows = protocol.parse(body, protocol.content_type(content_type))
        except protocol.RequestError as exc:
            raise _BadRecord(f"the request cannot be read as the endpoint reads it ({exc.message})") from None
        rows = rows if isinstance(rows, np.ndarray) else rows.toarray()
        return np.atleast_2d(np.asarray(rows, dtype=np.float64))

    def _scores(self, answer: dict | None, n: int) -> np.ndarray:
        width = len(self.config.data.classes) if self.config.problem_type == "multiclass" else 1
        unknown = np.full((n, width), np.nan)
        if not isinstance(answer, dict):
            self._unread("the records hold no endpointOutput (capture of answers is off?)")
            return unknown
        try:
            scores = answer_scores(self.config, _body(answer, "endpointOutput"), answer.get("observedContentType"))
        except (_BadRecord, ValueError, KeyError, TypeError, IndexError) as exc:
            self._unread(f"answers that cannot be read as predictions ({type(exc).__name__}: {str(exc)[:100]})")
            return unknown
        if len(scores) != n:
            self._unread(f"answers with a different number of predictions than request rows ({len(scores)} for {n})")
            return unknown
        return scores

    def _unread(self, reason: str) -> None:
        self.unread_answers[reason] = self.unread_answers.get(reason, 0) + 1

    def result(self, endpoint: str, destination: str, files: int) -> CapturedData:
        rows = np.vstack(self.rows) if self.rows else np.empty((0, self.served.n_features))
        scores = np.vstack(self.scores) if self.scores else None
        notes = [f"{_records(count)} with {reason}: their predictions are left out of the prediction checks"
                 for reason, count in self.unread_answers.items()]
        if self.full:
            notes.append(f"stopped reading at {self.max_rows:,} rows: the rest of the window is not analysed "
                         f"(pass a shorter --since)")
        if self.outside:
            notes.append(f"{_records(self.outside)} in the same hour files fall outside the window and are not used")
        if self.checks:
            notes.append(f"{_records(self.checks)} of the deploy's own checks (InferenceId {CHECK_INFERENCE_ID}...: "
                         f"the test split replayed), not clients' traffic: left out")
        return CapturedData(endpoint, destination, self.window, files, self.records, rows, tuple(self.ids), scores,
                            dict(self.narrow), dict(self.wide), tuple(self.skipped), self.outside, tuple(notes))


def _records(n: int) -> str:
    return f"{n} record" if n == 1 else f"{n} records"


def _body(side: dict, name: str) -> bytes:
    """The bytes a capture record's side holds, decoded from its encoding (CSV, JSON: text; BASE64)."""
    try:
        data, encoding = side["data"], str(side.get("encoding", "")).upper()
    except (KeyError, TypeError):
        raise _BadRecord(f"{name} has no data") from None
    if not isinstance(data, str):
        raise _BadRecord(f"{name}.data is not text")
    if encoding == "BASE64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _BadRecord(f"{name}.data is not valid base64") from None
    if encoding in ("CSV", "JSON"):
        return data.encode("utf-8")
    raise _BadRecord(f"{name}.encoding is {side.get('encoding')!r}, not CSV, JSON or BASE64")


def answer_scores(config: ModelConfig, body: bytes, content_type: str | None) -> np.ndarray:
    """The scores in an endpoint's answer, one row per request row (multiclass: one column per class).

    Reads what the container answers: scores (text/csv, application/json), or the keys model.yml's
    ``serving.inference_output`` selects (text/csv in that order, application/json, application/jsonlines). A
    binary answer needs its probability (``probability``, ``probabilities`` or ``predicted_score``), a
    multiclass one its ``probabilities`` or ``predicted_label`` (a class, as certainty 1).

    Raises:
        ValueError: the answer holds no scores this can read (RecordIO answers, a binary answer of labels only).
    """
    from modelops.serving import protocol

    media = (content_type or "").split(";", 1)[0].strip().lower()
    keys = config.serving.inference_output
    if not keys and media in (protocol.CSV, protocol.JSON):
        scores = protocol.read_predictions(body, media)
        return scores.reshape(len(scores), -1)
    if media == protocol.CSV:
        rows = [dict(zip(keys, (_cell(v) for v in line))) for line in csv.reader(io.StringIO(body.decode()))
                if line]
    elif media == protocol.JSON:
        rows = json.loads(body)["predictions"]
    elif media == protocol.JSONLINES:
        rows = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    else:
        raise ValueError(f"answers in {media or 'no content type'} are not read for predictions")
    return np.array([_row_scores(config, row) for row in rows], dtype=np.float64).reshape(len(rows), -1)


def _cell(text: str):
    text = text.strip()
    return json.loads(text) if text.startswith("[") else text


def _row_scores(config: ModelConfig, row: dict) -> list[float]:
    if config.problem_type == "multiclass":
        if "probabilities" in row:
            return [float(v) for v in row["probabilities"]]
        if "predicted_label" in row:
            return list(np.eye(len(config.data.classes))[int(float(row["predicted_label"]))])
        if "score" in row:
            return [float(v) for v in row["score"]]
        raise ValueError("no probabilities or predicted_label in the answer")
    if config.problem_type == "binary" and "probabilities" in row:
        return [float(row["probabilities"][-1])]
    for key in ("score", "predicted_score", "probability"):
        if key in row:
            return [float(row[key])]
    raise ValueError(f"the answer's keys {sorted(row)} hold no score")


def folder_name(config: ModelConfig) -> str:
    """The model folder's name for a Fix: sentence (MODEL_DIR when the config was not read from a folder)."""
    return config.folder.name if config.folder else "MODEL_DIR"
