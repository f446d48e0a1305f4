"""Captured traffic checked against the training baseline: schema, completeness, types, unseen categories, and
drift of each feature and of the predictions (Model Monitor's check names; tests in modelops.monitoring.drift).
Thresholds come from model.yml as it is now, not from the constraints frozen at training."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelops.config import ModelConfig
from modelops.monitoring.baseline import (
    CATEGORICAL,
    NUMERIC,
    Baseline,
    FeatureValues,
    MonitoredFeature,
    Violation,
    categorical_values,
    decode,
    numeric_values,
    prediction_values,
    sketch_sample,
    statistics,
)
from modelops.monitoring.drift import NO_CATEGORY, DriftResult, categorical_drift, numeric_drift, threshold_for
from modelops.monitoring.traffic import CapturedData, ServedModel

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
