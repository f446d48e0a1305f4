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

The steps live beside this module: ``traffic`` (the window, the served version, reading the capture), ``checks``
(the baseline's checks) and ``quality`` (ground truth); this one writes the run's outputs and names the whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from modelops.backends.base import Backend
from modelops.config import ModelConfig
from modelops.errors import ConfigError, ConstraintViolated
from modelops.monitoring.baseline import (
    Violation,
    dumps,
    violations_json,
)
from modelops.monitoring.checks import FeatureCheck, MonitorReport, check_traffic
from modelops.monitoring.quality import LiveQuality, live_quality, read_labels
from modelops.monitoring.traffic import (
    CapturedData,
    ServedModel,
    Skipped,
    Window,
    answer_scores,
    monitoring_window,
    read_capture,
    served_model,
)
from modelops.records import MonitorRecord

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


@dataclass(frozen=True)
class WindowCheck:
    """A window checked against the baseline: what was read, the report, the live quality, and where it ran."""

    captured: CapturedData
    report: MonitorReport
    quality: LiveQuality
    where: str  # "this kernel", or the SageMaker Model Monitor job(s) that made the checks

    def _repr_markdown_(self) -> str:
        return f"Checked by **{self.where}**.\n\n{self.captured._repr_markdown_()}"


#: ``engine`` values: None picks the backend's own (Model Monitor on sagemaker); NOTEBOOK reads the capture here.
NOTEBOOK = "notebook"
MODEL_MONITOR = "model-monitor"


def check_window(ops: Backend, config: ModelConfig, served: ServedModel, *, since: str | None = "24h",
                 until: str | None = None, labels: str | None = None, engine: str | None = None) -> WindowCheck:
    """The window's traffic checked against the served version's baseline, where the backend checks it.

    On the sagemaker backend, SageMaker Model Monitor's data-quality job analyses the capture in S3 (and its
    model-quality job the ground truth), and this kernel reads back its files; elsewhere, or with ``engine``
    "notebook", the capture is read and checked here (modelops.monitoring.checks).

    Raises:
        ConfigError: an unknown engine, or Model Monitor asked of a backend that has none.
        ProcessingFailed: a Model Monitor job failed. StoreError, DataError: as read_capture and live_quality.
    """
    analyzer = getattr(ops, "model_monitor", None)
    if engine not in (None, NOTEBOOK, MODEL_MONITOR):
        raise ConfigError(f"engine {engine!r} is not one the monitor knows. Fix: use {MODEL_MONITOR!r} (the sagemaker "
                          f"backend's default) or {NOTEBOOK!r}.")
    if engine == MODEL_MONITOR and analyzer is None:
        raise ConfigError(f"the {ops.name} backend has no SageMaker Model Monitor. Fix: pass --backend sagemaker, or "
                          f"leave out --engine.")
    if analyzer is not None and engine != NOTEBOOK:
        return analyzer.check(config, served, monitoring_window(since, until), labels)
    captured = read_capture(ops, config, served, since=since, until=until)
    report = check_traffic(config, served, captured)
    return WindowCheck(captured, report, live_quality(config, captured, labels), where="this kernel")


def record_monitoring(ops: Backend, config: ModelConfig, served: ServedModel, captured: CapturedData,
                      report: MonitorReport, quality: LiveQuality) -> Monitoring:
    """Write the window's statistics, constraint_violations.json and a summary to the store; the run's record.

    Files go to ``<store>/<model>/monitoring/<endpoint>/<yyyymmddThhmmssZ>/``.

    Raises:
        StoreError: a write failed.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    violations = tuple(report.violations) + tuple(quality.violations)

    def put(name: str, content: dict) -> str:
        uri = ops.store.uri(config.name, "monitoring", served.endpoint, stamp, name)
        return ops.store.put_bytes(uri, dumps(content), content_type="application/json").uri

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



__all__ = ["MODEL_MONITOR", "NOTEBOOK", "CapturedData", "FeatureCheck", "LiveQuality", "MonitorReport", "Monitoring",
           "ServedModel", "Skipped", "Window", "WindowCheck", "answer_scores", "check_traffic", "check_window",
           "live_quality", "monitoring_window", "read_capture", "read_labels", "record_monitoring", "served_model"]
