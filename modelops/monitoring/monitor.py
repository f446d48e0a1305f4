"""The monitor: what an endpoint captured, checked against its version's training baseline, on either backend.

One path for both backends: capture files are listed and read through the backend's Store (local files that
the endpoint wrote, or the S3 objects SageMaker's data capture wrote), decoded as the endpoint decoded them
(modelops.serving.protocol), read back as the monitored features (a one-hot group as one categorical), and
compared with the baseline written at training time (modelops.monitoring.baseline):

- schema: rows narrower or wider than the model (``missing_column_check``, ``extra_column_check``);
- completeness of numbers (``completeness_check``), type (``data_type_check``: a fraction in an integral
  feature, a negative value where training had none, a one-hot group with several 1s), categories never seen
  in training (``categorical_values_check``);
- drift of each feature and of the predictions (``baseline_drift_check``, tests in modelops.monitoring.drift);
- with ground truth (labels keyed by event id), the live metrics against the quality gates.

Thresholds come from model.yml as it is now (``monitoring``), not from the constraints frozen at training:
changing one needs no retraining. A malformed record, a truncated file or an unreadable object is reported
and skipped; it never stops the monitor.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelops.config import ModelConfig, canonical_label
from modelops.entities import PRODUCTION_VARIANT, PackageVersion
from modelops.errors import ConfigError, ConstraintViolated, DataError, EndpointFailed, StoreError
from modelops.monitoring.baseline import (
    CATEGORICAL,
    NUMERIC,
    Baseline,
    FeatureValues,
    MonitoredFeature,
    Violation,
    categorical_values,
    decode,
    dumps,
    monitored_features,
    numeric_values,
    prediction_feature,
    prediction_values,
    read_baseline,
    sketch_sample,
    statistics,
    violations_json,
)
from modelops.monitoring.drift import NO_CATEGORY, DriftResult, categorical_drift, numeric_drift, threshold_for
from modelops.records import MonitorRecord
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


def served_model(backend, config: ModelConfig, *, endpoint: str | None = None,
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
        status = backend.endpoints.status(endpoint)
        if status is None or status.version is None:
            raise EndpointFailed(f"endpoint {endpoint!r} serves no version, so there is nothing to monitor. Fix: "
                                 f"deploy it (`python -m ci deploy {_folder(config)}`), or name the version whose "
                                 f"baseline to use (--version N).")
        version = status.version
    package = backend.registry.get(config.name, int(version))
    baseline = read_baseline(backend.store, package.baselines)
    encoding = package_dataset(backend.store, config, package).feature_encoding
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


def read_capture(backend, config: ModelConfig, served: ServedModel, *, since: str | None = "24h",
                 until: str | None = None, max_rows: int = MAX_ROWS) -> CapturedData:
    """The requests ``served.endpoint`` answered in the window, from its capture files in the backend's store.

    Raises:
        ConfigError: data capture is off in model.yml and nothing was captured, or the window cannot be read.
        StoreError: the capture folder cannot be listed (one unreadable file is skipped, not raised).
    """
    from modelops.serving.capture import capture_uri

    window = monitoring_window(since, until)
    destination = capture_uri(backend.store, config.name)
    prefix = f"{destination}/{served.endpoint}/{PRODUCTION_VARIANT}"
    objects = [o for o in backend.store.list_objects(prefix) if _may_hold(o.uri, prefix, window)]
    reader = _Reader(config, served, window, max_rows)
    for listed in objects:
        if reader.full:
            break
        try:
            data = backend.store.get_bytes(listed.uri)
        except StoreError as exc:
            reader.skipped.append(Skipped(listed.uri, None, f"unreadable: {exc}"))
            continue
        reader.read_file(listed.uri, data)
    if not reader.records and not config.monitoring.data_capture.enabled:
        raise ConfigError(f"nothing was captured for {served.endpoint} under {prefix}, and data capture is off for "
                          f"{config.name}. Fix: set monitoring.data_capture.enabled: true in "
                          f"{_folder(config)}/model.yml, then train and deploy the version that has it.")
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


# -- checking the traffic --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureCheck:
    """One monitored feature in the window: its live statistics against training, and what it violated."""

    feature: MonitoredFeature
    part: str  # data | prediction
    live_rows: int
    completeness: float | None  # live share of rows with a value (numbers) or a known category
    baseline_completeness: float | None
    drift: DriftResult | None
    violations: tuple[Violation, ...] = ()
    ignored: bool = False
    note: str = ""
    baseline_values: Any = field(default=None, repr=False)  # numeric: (values, weights); categorical: counts
    live_values: Any = field(default=None, repr=False)  # numeric: array; categorical: counts

    @property
    def drifted(self) -> bool:
        return bool(self.drift and self.drift.drifted)


@dataclass(frozen=True)
class MonitorReport:
    """The window's traffic against the baseline: per feature, the violations, and the live statistics."""

    endpoint: str
    version: int
    rows: int
    checks: tuple[FeatureCheck, ...]
    violations: tuple[Violation, ...]
    live_statistics: dict = field(repr=False)  # data: Model Monitor's statistics.json of the window
    live_prediction_statistics: dict = field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def drifted(self) -> list[FeatureCheck]:
        return [c for c in self.checks if c.drifted]

    def table(self) -> pd.DataFrame:
        """One row per feature: completeness, the drift test's distance against its threshold, the verdict."""
        rows = []
        for check in self.checks:
            drift = check.drift
            rows.append({
                "feature": check.feature.name, "part": check.part, "kind": check.feature.kind,
                "live rows": check.live_rows, "completeness": check.completeness,
                "training completeness": check.baseline_completeness,
                "test": drift.test if drift else "-", "distance": drift.distance if drift else None,
                "threshold": drift.threshold if drift else None,
                "p-value": drift.p_value if drift else None,
                "result": _result(check)})
        return pd.DataFrame(rows).set_index("feature")

    def statement(self) -> str:
        if not self.rows:
            return (f"Nothing was captured from {self.endpoint} in the window: no traffic to check. (A scheduled "
                    f"monitor that keeps saying this for a busy endpoint means its data capture is broken.)")
        if not self.violations:
            return (f"No constraint violated: {self.rows} live rows of {self.endpoint} (v{self.version}) match the "
                    f"training baseline in schema, completeness, types, categories and distribution.")
        drifted = ", ".join(c.feature.name for c in self.drifted) or "none"
        return (f"{len(self.violations)} constraint violation(s) in {self.rows} live rows of {self.endpoint} "
                f"(v{self.version}); drifting: {drifted}.")

    def _repr_markdown_(self) -> str:
        notes = "".join(f"\n\n- {note}" for note in self.notes)
        return f"**{self.statement()}**{notes}"


def _result(check: FeatureCheck) -> str:
    if check.ignored:
        return "ignored (monitoring.drift.features)"
    if check.violations:
        return "VIOLATED: " + ", ".join(sorted({v.constraint_check_type for v in check.violations}))
    drift = check.drift
    if drift is None:
        return check.note or "not compared"
    if drift.distance > drift.threshold:
        return f"ok: above the threshold, but not significant (p = {drift.p_value:.2g}) on {drift.live_rows} rows"
    return "ok"


def check_traffic(config: ModelConfig, served: ServedModel, captured: CapturedData) -> MonitorReport:
    """Compare the window's rows and predictions with the served version's baseline (model.yml's thresholds)."""
    monitoring = config.monitoring
    decoded = decode(captured.rows, list(served.features))
    live_stats = statistics(decoded, captured.n_rows)
    violations = _schema_violations(served, captured)
    notes = list(captured.notes)
    enough = captured.n_rows >= monitoring.drift.min_rows
    if captured.n_rows and not enough:
        notes.append(f"only {captured.n_rows} live rows, fewer than monitoring.drift.min_rows "
                     f"({monitoring.drift.min_rows}): distributions are not compared, the other checks are made")
    checks = [_check(config, served.baseline, "data", values, captured.n_rows, enough) for values in decoded.values()]
    predicted = _prediction_values(config, served, captured)
    live_predictions = statistics({served.prediction.name: predicted}, len(predicted.values))
    if captured.n_rows:
        checks.append(_check(config, served.baseline, "prediction", predicted, len(predicted.values),
                             len(predicted.values) >= monitoring.drift.min_rows))
    for check in checks:
        violations += check.violations
    return MonitorReport(served.endpoint, served.package.version, captured.n_rows, tuple(checks), tuple(violations),
                         live_stats, live_predictions, tuple(notes))


def _prediction_values(config: ModelConfig, served: ServedModel, captured: CapturedData) -> FeatureValues:
    scores = captured.scores if captured.scores is not None else np.empty((0, 1))
    known = ~np.isnan(scores).any(axis=1) if len(scores) else np.zeros(0, dtype=bool)
    if served.prediction.kind == CATEGORICAL:
        return categorical_values(served.prediction, prediction_values(config, scores[known]))
    return numeric_values(served.prediction, scores[known, 0] if len(scores) else np.empty(0))


def _schema_violations(served: ServedModel, captured: CapturedData) -> list[Violation]:
    names = [f.name for f in served.features]
    found = []
    columns = _column_names(served)
    for width, count in sorted(captured.narrow_rows.items()):
        missing = columns[width:]
        found.append(Violation(missing[0], "missing_column_check",
                               f"{count} rows had {width} columns where the model has {served.n_features}: the last "
                               f"{len(missing)} ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}) were "
                               f"missing, and the endpoint predicted them as missing values"))
    for width, count in sorted(captured.wide_rows.items()):
        found.append(Violation(names[-1] if names else "", "extra_column_check",
                               f"{count} rows had {width} columns where the model has {served.n_features} (left out "
                               f"of every other check: their columns do not line up with the model's)"))
    return found


def _column_names(served: ServedModel) -> list[str]:
    names = [""] * served.n_features
    for feature in served.features:
        for position, column in enumerate(feature.columns):
            names[column] = (f"{feature.name}={feature.categories[position]}" if feature.kind == CATEGORICAL
                             else feature.name)
    return names


def _check(config: ModelConfig, baseline: Baseline, part: str, column: FeatureValues, n_rows: int,
           compare: bool) -> FeatureCheck:
    monitoring = config.monitoring
    feature = column.feature
    own = monitoring.drift.features.get(feature.name) or {}
    base = baseline.feature(part, feature.name)
    constraint = next((c for c in baseline.get(part, "constraints")["features"] if c["name"] == feature.name), None)
    if base is None or constraint is None:
        return FeatureCheck(feature, part, n_rows, None, None, None, note="not in the baseline")
    count = baseline.get(part, "statistics")["dataset"]["item_count"] or 1
    if own.get("ignore"):
        return FeatureCheck(feature, part, n_rows, None, constraint["completeness"], None, ignored=True)
    present = column.present & ~column.invalid
    completeness = float(present.mean()) if n_rows else None
    violations = []
    name = feature.name
    if n_rows and column.invalid.mean() > monitoring.datatype_check_threshold:
        violations.append(Violation(name, "data_type_check", f"{column.invalid.mean():.1%} of rows set several of "
                                    f"its one-hot columns, or values other than 0 and 1 (allowed: "
                                    f"{monitoring.datatype_check_threshold:.1%})"))
    if feature.kind == NUMERIC:
        live = column.values[present].astype(np.float64)
        if n_rows and completeness < constraint["completeness"] - monitoring.completeness_tolerance:
            violations.append(Violation(name, "completeness_check", f"completeness {completeness:.4g} is below "
                                        f"training's {constraint['completeness']:.4g} by more than "
                                        f"{monitoring.completeness_tolerance:g}"))
        if len(live) and base["inferred_type"] == "Integral":
            fractional = float(np.mean(live != np.round(live)))
            if fractional > monitoring.datatype_check_threshold:
                violations.append(Violation(name, "data_type_check", f"{fractional:.1%} of values are fractional; "
                                            f"the feature is Integral in training (allowed: "
                                            f"{monitoring.datatype_check_threshold:.1%})"))
        if len(live) and constraint.get("num_constraints", {}).get("is_non_negative"):
            negative = float(np.mean(live < 0))
            if negative > monitoring.datatype_check_threshold:
                violations.append(Violation(name, "data_type_check", f"{negative:.1%} of values are negative; the "
                                            f"feature is never negative in training (is_non_negative; allowed: "
                                            f"{monitoring.datatype_check_threshold:.1%})"))
        base_values, base_weights = sketch_sample(base)
        test = monitoring.drift.numeric_test
        threshold = own.get("threshold", threshold_for(test, monitoring.drift.numeric_threshold))
        robust = monitoring.drift.comparison_method == "robust"
        drift = (numeric_drift(name, test, threshold, base_values, base_weights, live, robust=robust)
                 if compare and len(live) else None)
        baseline_values, live_values = (base_values, base_weights), live
    else:
        base_counts = _base_counts(base, count)
        live_counts = _live_counts(column)
        unknown = live_counts.get(NO_CATEGORY, 0) / max(n_rows, 1)
        trained_unknown = base_counts.get(NO_CATEGORY, 0) / count
        if n_rows and unknown - trained_unknown > monitoring.domain_content_threshold:
            violations.append(Violation(name, "categorical_values_check", f"{unknown:.1%} of rows hold none of the "
                                        f"{len(constraint.get('string_constraints', {}).get('domains', []))} training "
                                        f"categories (an empty value, or one never seen in training sent as none of "
                                        f"its one-hot columns), against {trained_unknown:.1%} in training (allowed "
                                        f"above it: {monitoring.domain_content_threshold:.1%})"))
        test = monitoring.drift.categorical_test
        threshold = own.get("threshold", threshold_for(test, monitoring.drift.categorical_threshold))
        robust = monitoring.drift.comparison_method == "robust"
        drift = (categorical_drift(name, test, threshold, base_counts, live_counts, robust=robust)
                 if compare and n_rows else None)
        baseline_values, live_values = base_counts, live_counts
        completeness = 1.0 - unknown if n_rows else None
    if drift is not None and drift.drifted:
        violations.append(Violation(name, "baseline_drift_check", drift.describe()))
    note = "" if drift is not None else "too few rows to compare" if n_rows else "no live rows"
    return FeatureCheck(feature, part, n_rows, completeness, constraint["completeness"], drift, tuple(violations),
                        note=note, baseline_values=baseline_values, live_values=live_values)


def _base_counts(feature_statistics: dict, count: int) -> dict[str, float]:
    numbers = feature_statistics["string_statistics"]
    counts = {b["value"]: float(b["count"]) for b in numbers["distribution"]["categorical"]["buckets"]}
    if numbers["common"]["num_missing"]:
        counts[NO_CATEGORY] = float(numbers["common"]["num_missing"])
    return counts


def _live_counts(column: FeatureValues) -> dict[str, float]:
    counts: dict[str, float] = {}
    for value, invalid in zip(column.values, column.invalid):
        key = NO_CATEGORY if value is None or invalid else str(value)
        counts[key] = counts.get(key, 0.0) + 1
    return counts


# -- live quality, when ground truth is given ------------------------------------------------------------------


@dataclass(frozen=True)
class LiveQuality:
    """The live metrics on the rows whose true label is known, against the quality gates (or why there are none)."""

    labels_file: str | None
    labelled_rows: int
    unmatched_labels: int
    metrics: dict[str, float]
    gates: Any  # evaluation.QualityReport, or None without labels
    violations: tuple[Violation, ...] = ()
    problems: tuple[str, ...] = ()

    def statement(self) -> str:
        if self.labels_file is None:
            return ("No ground truth was given, so this report detects input drift (the features and the "
                    "predictions against training), not accuracy decay: a model can lose accuracy on inputs that "
                    "look like its training data. Pass the true labels (`python -m ci monitor MODEL --labels FILE`, "
                    "keyed by event id) to check the live metrics against the quality gates.")
        if not self.labelled_rows:
            return (f"None of the {self.unmatched_labels} labels in {self.labels_file} matched a captured row's event "
                    f"id in the window: no live metrics.")
        return (f"Live metrics on {self.labelled_rows} labelled rows: {self.gates.statement()}"
                + (f" ({self.unmatched_labels} labels matched no captured row in the window.)"
                   if self.unmatched_labels else ""))

    def table(self) -> pd.DataFrame | None:
        return self.gates.table() if self.gates is not None else None

    def _repr_markdown_(self) -> str:
        problems = "".join(f"\n\n- {p}" for p in self.problems)
        return f"**{self.statement()}**{problems}"


def read_labels(path: str | Path) -> dict[str, str]:
    """Ground truth keyed by event id, from Model Monitor's ground-truth JSON lines (``groundTruthData.data``,
    ``eventMetadata.eventId``) or a CSV file with a header naming ``event_id`` and ``label``.

    An event of several rows (a batch request) has its labels comma-separated, in row order.

    Raises:
        DataError: the file is missing, or has no labels in either form.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"cannot read the labels file {path}: {exc.strerror or exc}. Fix: pass an existing "
                        f"file.") from exc
    stripped = text.lstrip()
    labels: dict[str, str] = {}
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                labels[str(record["eventMetadata"]["eventId"])] = str(record["groundTruthData"]["data"])
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{number} is not a ground-truth record ({type(exc).__name__}: {exc}). Fix: "
                                f'write one JSON object a line: {{"groundTruthData": {{"data": "1", "encoding": '
                                f'"CSV"}}, "eventMetadata": {{"eventId": "..."}}, "eventVersion": "0"}}.') from exc
        return labels
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower().replace("-", "_"): name for name in reader.fieldnames or []}
    event = columns.get("event_id") or columns.get("eventid") or columns.get("inference_id")
    label = columns.get("label") or columns.get("ground_truth")
    if not event or not label:
        raise DataError(f"{path} has neither ground-truth JSON lines nor a CSV header with event_id and label "
                        f"(found {reader.fieldnames}). Fix: write `event_id,label` then one line per event.")
    for row in reader:
        labels[str(row[event]).strip()] = str(row[label]).strip()
    return labels


def live_quality(config: ModelConfig, captured: CapturedData, labels: str | Path | None) -> LiveQuality:
    """The live metrics of the captured rows whose label ``labels`` gives, against model.yml's quality gates.

    Raises:
        DataError: the labels file cannot be read.
    """
    from modelops.metrics import metrics_for
    from modelops.review.evaluation import check_quality

    if labels is None:
        return LiveQuality(None, 0, 0, {}, None)
    given = read_labels(labels)
    rows_of: dict[str, list[int]] = {}
    for index, event in enumerate(captured.event_ids):
        rows_of.setdefault(event, []).append(index)
    truth, picked, problems = [], [], []
    for event, text in given.items():
        rows = rows_of.get(event)
        if rows is None:
            continue
        values = [v for v in re.split(r"[,\n]", text) if v.strip()] if len(rows) > 1 else [text]
        if len(values) != len(rows):
            problems.append(f"event {event}: {len(values)} labels for {len(rows)} rows (left out)")
            continue
        try:
            truth += [_label(config, v) for v in values]
        except DataError as exc:
            problems.append(f"event {event}: {exc}")
            continue
        picked += rows
    matched = sum(1 for event in given if event in rows_of)
    if not picked:
        return LiveQuality(str(labels), 0, len(given) - matched, {}, None, problems=tuple(problems[:20]))
    scores = captured.scores[picked] if captured.scores is not None else np.full((len(picked), 1), np.nan)
    known = ~np.isnan(scores).any(axis=1)
    if not known.all():
        problems.append(f"{int((~known).sum())} labelled rows have no readable prediction (left out)")
    y = np.asarray(truth)[known]
    scores = scores[known]
    prediction = scores if config.problem_type == "multiclass" else scores[:, 0]
    metrics = metrics_for(config.problem_type, y, prediction, config.decision_threshold) if len(y) else {}
    gates = check_quality(config, metrics)
    bounds = {t.metric: t for t in config.quality}
    violations = tuple(_quality_violation(r, bounds[r.metric]) for r in gates.failures)
    return LiveQuality(str(labels), int(len(y)), len(given) - matched, metrics, gates, violations,
                       tuple(problems[:20]))


def _label(config: ModelConfig, text: str):
    """A ground-truth value as training encodes it (regression: the number; binary: 1 for positive_label or 1)."""
    value = canonical_label(text)
    if config.problem_type == "regression":
        try:
            return float(text)
        except ValueError:
            raise DataError(f"label {text!r} is not a number") from None
    if config.problem_type == "binary":
        return 1 if value in (canonical_label(config.data.positive_label), "1") else 0
    classes = [canonical_label(c) for c in config.data.classes]
    if value in classes:
        return classes.index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    raise DataError(f"label {text!r} is not one of the classes {list(config.data.classes)}")


def _quality_violation(gate, bounds) -> Violation:
    """A failed gate as Model Monitor's model-quality violation (its comparison operator and threshold)."""
    below = bounds.min is not None and (gate.value is None or gate.value < bounds.min)
    operator, threshold = ("LessThanThreshold", bounds.min) if below else ("GreaterThanThreshold", bounds.max)
    value = "missing" if gate.value is None else f"{gate.value:.4g}"
    return Violation("", operator, f"Metric {gate.metric} with {value} was {operator} '{threshold:g}' (the quality "
                                   f"gate in model.yml)", metric_name=gate.metric)


# -- the run's outputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Monitoring:
    """A monitoring run's outcome: its record (what the notebook hands on) and the files written to the store."""

    record: MonitorRecord
    violations: tuple[Violation, ...]
    uris: dict[str, str]

    def raise_if_violated(self) -> None:
        """Raise ConstraintViolated (exit 7) naming each violation and where constraint_violations.json is."""
        if not self.violations:
            return
        shown = "; ".join(f"{v.metric_name or v.feature_name}: {v.constraint_check_type}" for v in self.violations[:8])
        more = f" and {len(self.violations) - 8} more" if len(self.violations) > 8 else ""
        raise ConstraintViolated(
            f"{self.record.endpoint} broke {len(self.violations)} monitoring constraint(s): {shown}{more}. Evidence: "
            f"{self.uris['constraint_violations']} and the executed monitor notebook. Fix: find why live traffic "
            f"changed (a client's encoding, a new population) and retrain on data that has it, or, if the change "
            f"is expected, set a threshold of its own under monitoring.drift.features in model.yml.")

    def _repr_markdown_(self) -> str:
        return (f"**{len(self.violations)} violation(s)**; written to `{self.uris['constraint_violations']}` and "
                f"`{self.uris['statistics']}`")


def record_monitoring(backend, config: ModelConfig, served: ServedModel, captured: CapturedData,
                      report: MonitorReport, quality: LiveQuality) -> Monitoring:
    """Write the window's statistics, constraint_violations.json and a summary to the store; the run's record.

    Files go to ``<store>/<model>/monitoring/<endpoint>/<yyyymmddThhmmssZ>/``.

    Raises:
        StoreError: a write failed.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    violations = tuple(report.violations) + tuple(quality.violations)

    def put(name: str, content: dict) -> str:
        uri = backend.store.uri(config.name, "monitoring", served.endpoint, stamp, name)
        return backend.store.put_bytes(uri, dumps(content), content_type="application/json").uri

    summary = {"endpoint": served.endpoint, "version": served.package.version, "package_id": served.package.package_id,
               "window": {"since": _iso(captured.window.since), "until": _iso(captured.window.until)},
               "files": captured.files, "records": captured.records, "rows": captured.n_rows,
               "skipped": [s.__dict__ for s in captured.skipped], "notes": list(report.notes),
               "features": [_summary(c) for c in report.checks],
               "quality": {"labels": quality.labels_file, "labelled_rows": quality.labelled_rows,
                           "metrics": quality.metrics, "statement": quality.statement()},
               "baseline": served.baseline.uris}
    uris = {"statistics": put("statistics.json", report.live_statistics),
            "prediction_statistics": put("prediction_statistics.json", report.live_prediction_statistics),
            "constraint_violations": put("constraint_violations.json", violations_json(violations)),
            "report": put("report.json", summary)}
    prediction = next((c for c in report.checks if c.part == "prediction"), None)
    checks: dict[str, int] = {}
    for violation in violations:
        checks[violation.constraint_check_type] = checks.get(violation.constraint_check_type, 0) + 1
    record = MonitorRecord(
        endpoint=served.endpoint, version=served.package.version, since=_iso(captured.window.since),
        until=_iso(captured.window.until), records=captured.records, rows=captured.n_rows,
        skipped=len(captured.skipped), violations=len(violations), violation_checks=checks,
        drifted_features=tuple(c.feature.name for c in report.drifted),
        prediction_distance=prediction.drift.distance if prediction and prediction.drift else None,
        labelled_rows=quality.labelled_rows, live_metrics=dict(quality.metrics),
        violations_uri=uris["constraint_violations"], statistics_uri=uris["statistics"])
    return Monitoring(record, violations, uris)


def _summary(check: FeatureCheck) -> dict:
    drift = check.drift
    return {"feature": check.feature.name, "part": check.part, "kind": check.feature.kind,
            "completeness": check.completeness, "training_completeness": check.baseline_completeness,
            "test": drift.test if drift else None, "distance": drift.distance if drift else None,
            "threshold": drift.threshold if drift else None, "p_value": drift.p_value if drift else None,
            "drifted": check.drifted, "ignored": check.ignored,
            "violations": [v.constraint_check_type for v in check.violations]}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _folder(config: ModelConfig) -> str:
    return config.folder.name if config.folder else "MODEL_DIR"


__all__ = ["CapturedData", "FeatureCheck", "LiveQuality", "MonitorReport", "Monitoring",
           "ServedModel", "Skipped", "Window", "answer_scores", "check_traffic", "live_quality", "monitoring_window",
           "read_capture", "read_labels", "record_monitoring", "served_model"]
