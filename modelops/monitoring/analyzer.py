"""SageMaker Model Monitor's side of the monitor: what its analyzer is given (the version's baseline as one
statistics.json / constraints.json, and a record preprocessor), and its statistics.json and
constraint_violations.json read back into the monitor's own report.

Model Monitor sees a capture record as the flat JSON its record preprocessor returns. Ours returns, for each
request row, the monitored features by name (a one-hot group as the category it encodes) and the prediction the
endpoint answered, so Model Monitor's data-quality job checks the same features as the local monitor, the
categorical groups and the prediction's drift included, against the same baseline. What it does differently
(its drift distance and thresholds, no significance test) is in docs/monitoring.md; a test runs one capture
both ways.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from modelops.config import ModelConfig
from modelops.monitoring.baseline import (
    FORMAT_VERSION,
    NUMERIC,
    Violation,
    constraints,
    sketch_sample,
)
from modelops.monitoring.checks import FeatureCheck, MonitorReport
from modelops.monitoring.drift import NO_CATEGORY, DriftResult, ks_distance
from modelops.monitoring.quality import LiveQuality
from modelops.monitoring.traffic import CHECK_INFERENCE_ID, CapturedData, ServedModel, Window

#: What the preprocessor calls a row whose one-hot group sets several columns (or a value other than 0 and 1).
INVALID_CATEGORY = "(several or invalid one-hot values)"
#: Model Monitor's check types that concern one feature (the rest concern the dataset or a metric).
FEATURE_CHECKS = ("data_type_check", "completeness_check", "baseline_drift_check", "categorical_values_check",
                  "missing_column_check", "extra_column_check")
#: A feature's own thresholds in constraints.json, as AWS's "Schema for Constraints" spells the key.
OVERRIDES = "monitoringConfigOverrides"
#: The most values a live sketch is expanded to for the plots and the displayed distance.
SAMPLE_CAP = 100_000


# -- what the analyzer is given --------------------------------------------------------------------------------


def analyzer_baseline(config: ModelConfig, served: ServedModel) -> tuple[dict, dict]:
    """The version's data and prediction baselines as one statistics.json and constraints.json (the features the
    preprocessor emits), the constraints' thresholds from model.yml as it is now.

    Each part's constraints are suggested from its own statistics (the prediction's completeness is over the
    validation rows it was computed on, not the training rows).
    """
    data = served.baseline.get("data", "statistics")
    prediction = served.baseline.get("prediction", "statistics")
    statistics = {"version": FORMAT_VERSION, "dataset": dict(data["dataset"]),
                  "features": list(data["features"]) + list(prediction["features"])}
    suggested = constraints(data, config.monitoring)
    suggested["features"] = suggested["features"] + constraints(prediction, config.monitoring)["features"]
    for feature in suggested["features"]:  # the key as the schema for constraints.json spells it
        if "monitoring_config_overrides" in feature:
            feature[OVERRIDES] = feature.pop("monitoring_config_overrides")
    return statistics, suggested


def preprocessor_spec(config: ModelConfig, served: ServedModel) -> dict:
    """What the record preprocessor needs to know of the model: its columns, features and prediction."""
    return {"model": config.name, "version": served.package.version, "n_features": served.n_features,
            "features": [{"name": f.name, "kind": f.kind, "columns": list(f.columns), "categories": list(f.categories)}
                         for f in served.features],
            "prediction": {"name": served.prediction.name, "problem_type": config.problem_type,
                           "classes": [str(c) for c in config.data.classes],
                           "keys": list(config.serving.inference_output)},
            "no_category": NO_CATEGORY, "invalid_category": INVALID_CATEGORY,
            "skip_inference_id": CHECK_INFERENCE_ID}


def preprocessor_script(config: ModelConfig, served: ServedModel) -> str:
    """The record preprocessor Model Monitor's analyzer runs on each capture record (standard library only)."""
    return _PREPROCESSOR.replace("__SPEC__", json.dumps(preprocessor_spec(config, served), sort_keys=True))


_PREPROCESSOR = '''"""Model Monitor's record preprocessor, written by modelops for one model version: each request
row of a capture record as the monitored features by name (a one-hot group as its category) and the endpoint's
prediction. Requests that are not text/csv are left out (the local monitor reads every format the endpoint does)."""

import base64
import csv
import io
import json

SPEC = json.loads(r"""__SPEC__""")
SCORE_KEYS = ("score", "predicted_score", "probability")


def _get(obj, name):
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _side(record, snake, camel):
    """The captured side as the analyzer hands it: record.endpoint_input, record.event_data.endpointInput, or the
    raw record's captureData.endpointInput."""
    side = _get(record, snake)
    if side is None:
        side = _get(_get(record, "event_data"), camel)
    if side is None:
        side = _get(_get(record, "captureData"), camel)
    return side


def _body(side):
    data = _get(side, "data")
    if data is None:
        return None
    if str(_get(side, "encoding") or "CSV").upper() == "BASE64":
        return base64.b64decode(data).decode("utf-8")
    return data


def _media(side):
    """The side's content type; when the record does not say, what its body looks like."""
    media = str(_get(side, "observedContentType") or _get(side, "observed_content_type") or "")
    media = media.split(";")[0].strip().lower()
    if media:
        return media
    body = (_body(side) or "").lstrip()
    return "application/json" if body.startswith("{") else "text/csv"


def _number(text):
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if value != value else value


def _category(feature, cells):
    values = [cells[c] if c < len(cells) else None for c in feature["columns"]]
    if any(v is None for v in values):
        return None
    if any(v not in (0.0, 1.0) for v in values) or sum(values) > 1:
        return SPEC["invalid_category"]
    if sum(values) == 0:
        return SPEC["no_category"]
    return feature["categories"][values.index(1.0)]


def _row_scores(row):
    prediction = SPEC["prediction"]
    if isinstance(row, (int, float)):
        return [float(row)]
    if isinstance(row, list):
        return [float(v) for v in row]
    if prediction["problem_type"] == "multiclass":
        if "probabilities" in row:
            return [float(v) for v in row["probabilities"]]
        if "predicted_label" in row:
            hot = [0.0] * len(prediction["classes"])
            hot[int(float(row["predicted_label"]))] = 1.0
            return hot
        if "score" in row:
            return [float(v) for v in row["score"]]
        return None
    if prediction["problem_type"] == "binary" and "probabilities" in row:
        return [float(row["probabilities"][-1])]
    for key in SCORE_KEYS:
        if key in row:
            return [float(row[key])]
    return None


def _scores(side):
    body, media = _body(side), _media(side)
    if body is None:
        return None
    keys = SPEC["prediction"]["keys"]
    try:
        if media == "application/json":
            document = json.loads(body)
            rows = document["predictions"]
            return [_row_scores(r["score"] if not keys and isinstance(r, dict) and "score" in r else r) for r in rows]
        if media == "application/jsonlines":
            return [_row_scores(json.loads(line)) for line in body.splitlines() if line.strip()]
        if media == "text/csv":
            lines = [line for line in csv.reader(io.StringIO(body)) if line]
            if keys:
                rows = [dict(zip(keys, (json.loads(c) if c.strip().startswith("[") else c for c in line)))
                        for line in lines]
                return [_row_scores(r) for r in rows]
            return [[float(c) for c in line] for line in lines]
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return None


def _prediction(scores):
    prediction = SPEC["prediction"]
    if scores is None:
        return None
    if any(v != v or v in (float("inf"), float("-inf")) for v in scores):
        return None  # no number JSON can carry: a missing prediction
    if prediction["problem_type"] == "multiclass":
        return prediction["classes"][max(range(len(scores)), key=scores.__getitem__)]
    return scores[0]


def _inference_id(record):
    metadata = _get(record, "event_metadata") or _get(record, "eventMetadata") or {}
    return str(_get(metadata, "inferenceId") or _get(metadata, "inference_id") or "")


def preprocess_handler(inference_record, logger=None):
    if _inference_id(inference_record).startswith(SPEC["skip_inference_id"]):
        return []  # the deploy's own checks: the test split replayed, not clients' traffic
    request = _side(inference_record, "endpoint_input", "endpointInput")
    if request is None or _media(request) != "text/csv":
        return []
    rows = [line for line in csv.reader(io.StringIO(_body(request) or "")) if line]
    scores = _scores(_side(inference_record, "endpoint_output", "endpointOutput"))
    if scores is not None and len(scores) != len(rows):
        scores = None
    out = []
    for index, line in enumerate(rows):
        cells = [_number(c) for c in line]
        if len(cells) > SPEC["n_features"]:
            continue  # wider than the model: its columns do not line up with the features
        flat = {}
        for feature in SPEC["features"]:
            if feature["kind"] == "numeric":
                column = feature["columns"][0]
                flat[feature["name"]] = cells[column] if column < len(cells) else None
            else:
                flat[feature["name"]] = _category(feature, cells)
        flat[SPEC["prediction"]["name"]] = _prediction(scores[index]) if scores is not None else None
        out.append(flat)
    if len(out) == 1:
        return out[0]
    return out
'''


# -- what the analyzer wrote, read back ------------------------------------------------------------------------


def read_violations(document: dict) -> tuple[Violation, ...]:
    """constraint_violations.json (data or model quality) as the monitor's violations.

    Raises:
        ValueError: the document is not a constraint_violations.json.
    """
    if not isinstance(document, dict) or not isinstance(document.get("violations"), list):
        raise ValueError("not a constraint_violations.json: no 'violations' list")
    found = []
    for entry in document["violations"]:
        description = " ".join(str(entry.get("description", "")).split())
        if "metric_name" in entry:
            found.append(Violation("", entry["constraint_check_type"], description, metric_name=entry["metric_name"]))
        else:
            found.append(Violation(str(entry.get("feature_name", "")), entry["constraint_check_type"], description))
    return tuple(found)


@dataclass(frozen=True)
class AnalyzedCapture(CapturedData):
    """A window Model Monitor analysed: its counts, not its rows (they stay in S3 and in the job)."""

    analyzed_rows: int = 0
    job: str = ""  # the monitoring execution's processing job
    report_uri: str = ""  # where the analyzer wrote its files

    @property
    def n_rows(self) -> int:
        return self.analyzed_rows

    def _repr_markdown_(self) -> str:
        lines = [f"**{self.analyzed_rows} rows** of {self.endpoint} analysed by SageMaker Model Monitor (processing "
                 f"job `{self.job}`), {self.window.describe()}; its files: `{self.report_uri}`."]
        lines += [f"- {note}" for note in self.notes]
        return "\n\n".join(lines)


def analyzed_capture(served: ServedModel, destination: str, window: Window, statistics: dict, job: str,
                     report_uri: str, notes: tuple[str, ...] = ()) -> AnalyzedCapture:
    """The window as Model Monitor saw it (rows after the preprocessor; capture files and records it does not
    count)."""
    rows = int(statistics.get("dataset", {}).get("item_count") or 0)
    return AnalyzedCapture(served.endpoint, destination, window, files=0, records=rows,
                           rows=np.empty((0, served.n_features)), event_ids=(), scores=None, notes=notes,
                           analyzed_rows=rows, job=job, report_uri=report_uri)


def report_from_analyzer(config: ModelConfig, served: ServedModel, statistics: dict, violations: dict,
                         baseline_constraints: dict) -> MonitorReport:
    """Model Monitor's statistics.json and constraint_violations.json as the monitor's report: one row per feature
    with its live completeness, the distance Model Monitor compares (L-infinity: the largest CDF gap for numbers,
    the largest category share difference for categories, recomputed here from the two sketches for display), and
    Model Monitor's verdict, which is the one that counts."""
    found = read_violations(violations)
    rows = int(statistics.get("dataset", {}).get("item_count") or 0)
    live = {f["name"]: f for f in statistics.get("features", [])}
    limits = {c["name"]: c for c in baseline_constraints.get("features", [])}
    distribution = baseline_constraints.get("monitoring_config", {}).get("distribution_constraints", {})
    parts = [("data", f) for f in served.features] + [("prediction", served.prediction)]
    checks = []
    for part, feature in parts:
        own = [v for v in found if v.feature_name == feature.name]
        base = served.baseline.feature(part, feature.name)
        checks.append(_check(feature, part, base, live.get(feature.name), limits.get(feature.name, {}), distribution,
                             own, rows))
    known = {f.name for _, f in parts}
    unattached = tuple(v for v in found if v.feature_name not in known)
    features = statistics.get("features", [])
    data = {**statistics, "features": [f for f in features if f["name"] != served.prediction.name]}
    prediction = {**statistics, "features": [f for f in features if f["name"] == served.prediction.name]}
    notes = tuple(f"Model Monitor: {v.feature_name or v.metric_name}: {v.constraint_check_type}: {v.description}"
                  for v in unattached)
    return MonitorReport(served.endpoint, served.package.version, rows, tuple(checks), tuple(found), data, prediction,
                         notes)


def _check(feature, part, base: dict | None, live: dict | None, limit: dict, distribution: dict,
           violations: list[Violation], rows: int) -> FeatureCheck:
    completeness = None
    if live is not None and rows:
        stats = live.get("numerical_statistics") or live.get("string_statistics") or {}
        completeness = stats.get("common", {}).get("num_present", 0) / rows
    if base is None or live is None:
        note = "not in the baseline" if base is None else "Model Monitor reported no statistics for it"
        return FeatureCheck(feature, part, rows, completeness, limit.get("completeness"), None, tuple(violations),
                            note=note)
    drifted = any(v.constraint_check_type == "baseline_drift_check" for v in violations)
    overrides = (limit.get(OVERRIDES) or limit.get("monitoring_config_overrides") or {}).get(
        "distribution_constraints", {})
    if feature.kind == NUMERIC:
        threshold = overrides.get("comparison_threshold", distribution.get("comparison_threshold", 0.1))
        base_values, base_weights = sketch_sample(base)
        live_values = _expanded(*sketch_sample(live))
        distance = ks_distance(base_values, base_weights, live_values)
        baseline_values, test = (base_values, base_weights), "ks"
        base_rows = float(base_weights.sum())
    else:
        threshold = overrides.get("categorical_comparison_threshold",
                                  distribution.get("categorical_comparison_threshold", 0.1))
        baseline_values, live_values = _counts(base), _counts(live)
        distance = _linf(baseline_values, live_values)
        test, base_rows = "linf", float(sum(baseline_values.values()))
    drift = DriftResult(feature.name, feature.kind, test, float(distance), float(threshold), None, drifted,
                        int(base_rows), rows)
    return FeatureCheck(feature, part, rows, completeness, limit.get("completeness"), drift, tuple(violations),
                        baseline_values=baseline_values, live_values=live_values)


def _expanded(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A sketch's weighted values as a plain sample (at most SAMPLE_CAP values, in proportion)."""
    total = weights.sum()
    scale = min(1.0, SAMPLE_CAP / total) if total else 1.0
    return np.repeat(values, np.maximum(np.round(weights * scale), 1).astype(int)) if len(values) else values


def _counts(feature_statistics: dict) -> dict[str, float]:
    strings = feature_statistics.get("string_statistics", {})
    buckets = strings.get("distribution", {}).get("categorical", {}).get("buckets", [])
    counts = {str(b["value"]): float(b["count"]) for b in buckets}
    missing = strings.get("common", {}).get("num_missing", 0)
    if missing:
        counts[NO_CATEGORY] = counts.get(NO_CATEGORY, 0.0) + float(missing)
    return counts


def _linf(base: dict[str, float], live: dict[str, float]) -> float:
    base_total, live_total = sum(base.values()) or 1.0, sum(live.values()) or 1.0
    return max((abs(base.get(c, 0) / base_total - live.get(c, 0) / live_total) for c in set(base) | set(live)),
               default=0.0)


@dataclass(frozen=True)
class AnalyzedQuality(LiveQuality):
    """Live metrics as Model Monitor's model-quality job computed them (ground truth merged by event id)."""

    job: str = ""
    statement_text: str = field(default="", repr=False)

    def statement(self) -> str:
        return self.statement_text

    def table(self):
        import pandas as pd

        return pd.DataFrame([{"metric": name, "live": value} for name, value in self.metrics.items()]
                            ).set_index("metric") if self.metrics else None


def quality_from_analyzer(config: ModelConfig, labels_file: str, statistics: dict, violations: dict,
                          job: str) -> AnalyzedQuality:
    """Model Monitor's model-quality statistics.json and constraint_violations.json as the monitor's live quality."""
    from modelops.monitoring.baseline import QUALITY_SECTION

    section = statistics.get(f"{QUALITY_SECTION[config.problem_type]}_metrics", {})
    metrics = {name: float(value["value"]) for name, value in section.items()
               if isinstance(value, dict) and isinstance(value.get("value"), (int, float))}
    rows = int(statistics.get("dataset", {}).get("item_count") or 0)
    found = read_violations(violations)
    broken = ", ".join(f"{v.metric_name} ({v.description})" for v in found) or "none"
    statement = (f"Live metrics from SageMaker Model Monitor's model-quality job `{job}` on {rows} rows whose ground "
                 f"truth it merged from {labels_file}: quality gates broken: {broken}.")
    return AnalyzedQuality(labels_file, rows, 0, metrics, None, found, job=job, statement_text=statement)


def analyzer_differences(config: ModelConfig) -> list[str]:
    """The checks the local monitor makes that Model Monitor does not, each with where it runs instead."""
    notes = ["monitoring.drift.min_rows: Model Monitor compares the distributions of any window, however few rows",
             "comparison_method robust is Model Monitor's own Robust rule (KS-based for small samples, its formula "
             "not published), not the local significance test at 5%"]
    drift = config.monitoring.drift
    if drift.numeric_test != "ks":
        notes.append(f"numbers are compared by Model Monitor's L-infinity distance (the largest CDF gap), not "
                     f"{drift.numeric_test}; the threshold model.yml gives for {drift.numeric_test} is used as is")
    if drift.categorical_test != "linf":
        notes.append(f"categories are compared by Model Monitor's LInfinity (the largest share difference), not "
                     f"{drift.categorical_test}; the threshold model.yml gives for {drift.categorical_test} is used "
                     f"as is")
    return notes
