"""model.yml ``monitoring``: data capture, the drift tests and the constraint thresholds (the monitor reads them:
modelops/monitoring/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelops.config.schema import given

#: What an endpoint captures when model.yml enables capture without saying more (the backends' DataCapture too).
DEFAULT_CAPTURE_SAMPLING_PERCENTAGE = 100.0
DEFAULT_CAPTURE_MAX_DISK_MB = 1024.0

_SHARE = {"type": "number", "minimum": 0, "maximum": 1}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "data_capture": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "sampling_percentage": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                "max_disk_mb": {"type": "number", "exclusiveMinimum": 0},
            },
        },
        "drift": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "numeric_test": {"type": "string"},
                "numeric_threshold": {"type": "number", "exclusiveMinimum": 0},
                "categorical_test": {"type": "string"},
                "categorical_threshold": {"type": "number", "exclusiveMinimum": 0},
                "comparison_method": {"enum": ["robust", "simple"]},
                "min_rows": {"type": "integer", "minimum": 1},
                "features": {"type": "object", "additionalProperties": {
                    "type": "object", "additionalProperties": False, "minProperties": 1,
                    "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0},
                                   "ignore": {"type": "boolean"}}}},
            },
        },
        "completeness_tolerance": _SHARE,
        "datatype_check_threshold": _SHARE,
        "domain_content_threshold": _SHARE,
    },
}


@dataclass(frozen=True)
class DataCaptureConfig:
    """Which requests the endpoint records for the monitor (SageMaker's DataCaptureConfig; off unless enabled)."""

    enabled: bool = False
    sampling_percentage: float = DEFAULT_CAPTURE_SAMPLING_PERCENTAGE  # share of requests captured
    #: Local endpoints: the oldest capture files go beyond this (S3 has no bound).
    max_disk_mb: float = DEFAULT_CAPTURE_MAX_DISK_MB


@dataclass(frozen=True)
class DriftTestSpec:
    """A drift test as model.yml may name it: its kind, default threshold and whether its distance lies in [0, 1]
    (``modelops.monitoring.drift`` computes it)."""

    name: str
    kind: str  # numeric | categorical
    default_threshold: float
    bounded: bool
    title: str


DRIFT_TESTS: dict[str, DriftTestSpec] = {t.name: t for t in (
    DriftTestSpec("ks", "numeric", 0.1, True, "Kolmogorov-Smirnov distance (largest CDF gap)"),
    DriftTestSpec("wasserstein", "numeric", 0.2, False, "Wasserstein distance / baseline std"),
    DriftTestSpec("jensen_shannon", "categorical", 0.1, True, "Jensen-Shannon distance"),
    DriftTestSpec("psi", "categorical", 0.2, False, "population stability index"),
    DriftTestSpec("linf", "categorical", 0.1, True, "largest category share difference (L-infinity)"),
)}


@dataclass(frozen=True)
class DriftConfig:
    """How the monitor compares live features with the training baseline (the tests: DRIFT_TESTS)."""

    numeric_test: str = "ks"
    numeric_threshold: float | None = None  # None: the test's default
    categorical_test: str = "jensen_shannon"
    categorical_threshold: float | None = None
    comparison_method: str = "robust"  # robust: no drift is called on fewer rows than the test can tell apart
    min_rows: int = 30  # fewer live rows than this: distributions are not compared (schema checks still run)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {threshold: x} or {ignore: true}


@dataclass(frozen=True)
class MonitoringConfig:
    """model.yml ``monitoring``: data capture, the drift tests and the constraint thresholds."""

    data_capture: DataCaptureConfig = field(default_factory=DataCaptureConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    completeness_tolerance: float = 0.02  # live completeness may fall this far below training's
    datatype_check_threshold: float = 0.1  # share of live values of another type than training's allowed
    domain_content_threshold: float = 0.1  # share of live rows outside the training categories allowed


def parse(raw: dict) -> MonitoringConfig:
    monitoring = raw.get("monitoring") or {}
    drift = monitoring.get("drift") or {}
    return MonitoringConfig(**{
        **given(monitoring, MonitoringConfig),
        "data_capture": DataCaptureConfig(**(monitoring.get("data_capture") or {})),
        "drift": DriftConfig(**{**drift, "features": dict(drift.get("features") or {})}),
    })


def problems(raw: dict) -> list[str]:
    """Drift tests the monitor does not know, and thresholds outside what a test can measure."""
    drift = (raw.get("monitoring") or {}).get("drift") or {}
    if not drift:
        return []

    problems = []
    defaults = DriftConfig()
    for key, kind in (("numeric_test", "numeric"), ("categorical_test", "categorical")):
        name = drift.get(key, getattr(defaults, key))
        known = [t.name for t in DRIFT_TESTS.values() if t.kind == kind]
        if name not in known:
            problems.append(f"key 'monitoring.drift.{key}' is {name!r}, not a {kind} drift test. Fix: use one of "
                            f"{known}")
            continue
        threshold = drift.get(key.replace("_test", "_threshold"))
        if threshold is not None and DRIFT_TESTS[name].bounded and threshold > 1:
            problems.append(f"key 'monitoring.drift.{key.replace('_test', '_threshold')}' is {threshold}, but "
                            f"{name} lies between 0 and 1, so it would never drift. Fix: use a value below 1 "
                            f"(default {DRIFT_TESTS[name].default_threshold})")
    return problems
