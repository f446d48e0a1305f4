"""A stand-in for SageMaker Model Monitor's analyzer, for the tests: it runs our record preprocessor on capture
records as the analyzer's wrapper does, and applies Model Monitor's checks as AWS documents them, writing
statistics.json and constraint_violations.json in its shapes. It is not Model Monitor (a Spark job in AWS's
image): where its semantics are a reading of the documentation, docs/monitoring.md says so.

- the wrapper (the analyzer image's ``preprocessor`` module): the script is loaded from a file, its
  ``preprocess_handler`` called with a ``CapturedData`` built from each JSON line (with a logger when it takes
  one); its return value is serialised with ``json.dumps``; a list holds several rows, an empty one none;
- the checks ("Schema for Violations (constraint_violations.json file)"): ``data_type_check`` (the share of
  values not of the baseline's inferred type above ``datatype_check_threshold``), ``completeness_check`` (live
  completeness below the constraint's), ``categorical_values_check`` (the share of values outside the domain
  above ``domain_content_threshold``), ``baseline_drift_check`` (the distance, L-infinity of the CDFs for
  numbers and of the category shares with ``LInfinity``, above the threshold: ``comparison_method`` ``Simple``;
  its ``Robust`` rule is not published, so this stand-in refuses it), and ``missing_column_check`` (a baseline
  feature absent from the data).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from modelops.monitoring.baseline import (
    CATEGORICAL,
    NUMERIC,
    MonitoredFeature,
    categorical_values,
    numeric_values,
    sketch_sample,
    statistics,
)
from modelops.monitoring.drift import ks_distance


def captured_data(line: str, form: str = "documented"):
    """A capture record as the preprocessor receives it: ``documented`` (``record.endpoint_input.data``, AWS's
    documentation), ``sdk`` (``record.event_data.endpointInput.data``, the SDK's sample preprocessor) or
    ``dict`` (the parsed record)."""
    record = json.loads(line)
    if form == "dict":
        return record
    sides = {name: SimpleNamespace(**side) for name, side in record["captureData"].items()}
    if form == "sdk":
        return SimpleNamespace(event_data=SimpleNamespace(**sides), event_metadata=record["eventMetadata"])
    return SimpleNamespace(endpoint_input=sides.get("endpointInput"), endpoint_output=sides.get("endpointOutput"),
                           event_metadata=record["eventMetadata"])


def preprocess(script: str, lines: list[str], tmp_path: Path, form: str = "documented") -> list[dict]:
    """Run a record preprocessor on capture lines as the analyzer's wrapper does: the flat rows it yields."""
    path = tmp_path / "preprocessor.py"
    path.write_text(script)
    spec = importlib.util.spec_from_file_location("preprocessor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows: list[dict] = []
    for line in lines:
        returned = json.loads(json.dumps(module.preprocess_handler(captured_data(line, form),
                                                                   logging.getLogger("Preprocessing"))))
        rows += returned if isinstance(returned, list) else [returned]
    return rows


def analyze(rows: list[dict], baseline_statistics: dict, baseline_constraints: dict) -> tuple[dict, dict]:
    """statistics.json and constraint_violations.json of the preprocessed rows against the baseline."""
    config = baseline_constraints["monitoring_config"]
    distribution = config["distribution_constraints"]
    if distribution["comparison_method"] != "Simple":
        raise NotImplementedError("Model Monitor's Robust comparison is not published: use comparison_method simple")
    base = {f["name"]: f for f in baseline_statistics["features"]}
    columns = {}
    violations = []
    for constraint in baseline_constraints["features"]:
        name = constraint["name"]
        if not any(name in row for row in rows):
            violations.append(_violation(name, "missing_column_check", 0.0))
            continue
        values = [row.get(name) for row in rows]
        if constraint["inferred_type"] == "String":
            columns[name] = categorical_values(MonitoredFeature(name, CATEGORICAL), values)
        else:
            columns[name] = numeric_values(MonitoredFeature(name, NUMERIC),
                                           [np.nan if v is None else float(v) for v in values])
        violations += _checks(constraint, base[name], columns[name], config, distribution, len(rows))
    return statistics(columns, len(rows)), {"violations": violations}


def _checks(constraint: dict, base: dict, column, config: dict, distribution: dict, n: int) -> list[dict]:
    name = constraint["name"]
    present = column.present
    found = []
    completeness = float(present.mean()) if n else 0.0
    if completeness < constraint["completeness"]:
        found.append(_violation(name, "completeness_check", completeness))
    overrides = constraint.get("monitoringConfigOverrides", {}).get("distribution_constraints", {})
    if constraint["inferred_type"] == "String":
        live = [str(v) for v in column.values[present]]
        domain = set(constraint["string_constraints"]["domains"])
        outside = sum(v not in domain for v in live) / max(len(live), 1)
        if outside > config["domain_content_threshold"]:
            found.append(_violation(name, "categorical_values_check", outside))
        buckets = base["string_statistics"]["distribution"]["categorical"]["buckets"]
        base_counts = {b["value"]: b["count"] for b in buckets}
        live_counts = {value: live.count(value) for value in set(live)}
        distance = _linf(base_counts, live_counts)
        threshold = overrides.get("categorical_comparison_threshold", distribution["categorical_comparison_threshold"])
    else:
        live = column.values[present].astype(np.float64)
        if constraint["inferred_type"] == "Integral" and len(live):
            matching = float(np.mean(live == np.round(live)))
            if 1 - matching > config["datatype_check_threshold"]:
                found.append(_violation(name, "data_type_check", matching))
        values, weights = sketch_sample(base)
        distance = ks_distance(values, weights, live)
        threshold = overrides.get("comparison_threshold", distribution["comparison_threshold"])
    if distance > threshold:
        found.append({"feature_name": name, "constraint_check_type": "baseline_drift_check",
                      "description": f"Baseline drift distance: {distance} exceeds threshold: {threshold}"})
    return found


def _linf(base: dict, live: dict) -> float:
    base_total, live_total = sum(base.values()) or 1, sum(live.values()) or 1
    return max(abs(base.get(c, 0) / base_total - live.get(c, 0) / live_total) for c in set(base) | set(live))


def _violation(name: str, check: str, value: float) -> dict:
    """An entry as the analyzer words it (the SDK's sample constraint_violations.json)."""
    return {"feature_name": name, "constraint_check_type": check,
            "description": f"Value: {value} does not meet the constraint requirement! "}
