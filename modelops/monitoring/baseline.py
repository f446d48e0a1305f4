"""SageMaker Model Monitor's files, computed here: statistics.json, constraints.json, constraint_violations.json.

A model's baseline is written at training time beside its artifact (``<store>/<model>/training/<job>/baseline/``)
in Model Monitor's formats, so SageMaker's own monitoring can read it too, and recorded with the package:

- ``data/``: the training split's features. A one-hot group (modelops.data.encoding) is one ``String`` feature
  whose domain is its categories, as Model Monitor would see the raw column; numbers are ``Integral`` or
  ``Fractional`` with their quantile sketch (KLL, ``k`` 2048, ``c`` 0.64, Model Monitor's parameters).
- ``prediction/``: the model's predictions on the validation split (rows it was not fitted on), as one feature:
  ``prediction`` (the score: regression value, probability of the positive class) or ``predicted_class``.
- ``quality/``: Model Monitor's model-quality files: the validation metrics, and the quality gates of model.yml
  as constraints (``LessThanThreshold`` / ``GreaterThanThreshold``).

Where this differs from what Model Monitor's own container writes is listed in docs/monitoring.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelops.backends.base import Backend
from modelops.config import ModelConfig, MonitoringConfig
from modelops.errors import StoreError

#: Model Monitor's file format version (its files say 0.0).
FORMAT_VERSION = 0.0
#: The KLL sketch parameters Model Monitor writes, and the buckets it materialises the distribution into.
KLL_K = 2048
KLL_C = 0.64
BUCKETS = 10
NUMERIC = "numeric"
CATEGORICAL = "categorical"
#: Model Monitor's ``inferred_type`` values.
INTEGRAL, FRACTIONAL, STRING = "Integral", "Fractional", "String"
#: The baseline's parts and files, as recorded with a package (``PackageVersion.baselines``: part_file -> URI).
PARTS = ("data", "prediction", "quality")
FILES = ("statistics", "constraints")
#: Model Monitor's names of the model-quality sections, by problem type.
QUALITY_SECTION = {"regression": "regression", "binary": "binary_classification",
                   "multiclass": "multiclass_classification"}


@dataclass(frozen=True)
class MonitoredFeature:
    """One feature as the monitor sees it: a numeric column, or a one-hot group read back as one categorical."""

    name: str
    kind: str  # NUMERIC | CATEGORICAL
    columns: tuple[int, ...] = ()  # the model's feature columns it is read from (none for a prediction)
    categories: tuple[str, ...] = ()  # CATEGORICAL: the category each column stands for


def monitored_features(encoding) -> list[MonitoredFeature]:
    """The features of a FeatureEncoding: each numeric column, then each categorical column's one-hot group."""
    names = encoding.feature_names
    features = [MonitoredFeature(names[i], NUMERIC, (i,)) for i in range(len(encoding.numeric))]
    position = len(encoding.numeric)
    for column, values in encoding.categorical:
        features.append(MonitoredFeature(column, CATEGORICAL, tuple(range(position, position + len(values))),
                                         tuple(values)))
        position += len(values)
    return features


def prediction_feature(config: ModelConfig) -> MonitoredFeature:
    """The prediction as one feature: the score (regression, binary) or the predicted class (multiclass)."""
    if config.problem_type == "multiclass":
        return MonitoredFeature("predicted_class", CATEGORICAL, categories=tuple(map(str, config.data.classes)))
    return MonitoredFeature("prediction", NUMERIC)


def prediction_values(config: ModelConfig, scores: np.ndarray) -> np.ndarray:
    """Predictions as the prediction feature's values: scores as numbers, multiclass as class names."""
    scores = np.asarray(scores, dtype=np.float64)
    if config.problem_type == "multiclass":
        names = np.array([str(c) for c in config.data.classes], dtype=object)
        return names[np.atleast_2d(scores).argmax(axis=1)]
    return scores.ravel()


@dataclass(frozen=True)
class FeatureValues:
    """One feature's values in a table: numbers (NaN: missing), or categories (None: no known category)."""

    feature: MonitoredFeature
    values: np.ndarray
    invalid: np.ndarray  # rows whose cells cannot be this feature's type (a one-hot group with several 1s, a 0.5)

    @property
    def present(self) -> np.ndarray:
        if self.feature.kind == NUMERIC:
            return ~np.isnan(self.values.astype(np.float64))
        return np.not_equal(self.values, None) if len(self.values) else np.zeros(0, dtype=bool)


def decode(rows: np.ndarray, features: list[MonitoredFeature]) -> dict[str, FeatureValues]:
    """Feature rows (the model's columns) read back as the monitored features.

    A one-hot group is its category where exactly one of its columns is 1, None where none is (an empty cell,
    or a value never seen in training sent as none of them); several 1s, or cells other than 0 and 1, are
    invalid rows (a client encoding them wrongly).
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    decoded = {}
    for feature in features:
        if feature.kind == NUMERIC:
            values = rows[:, feature.columns[0]] if len(rows) else np.empty(0)
            decoded[feature.name] = FeatureValues(feature, values, np.zeros(len(values), dtype=bool))
            continue
        codes, invalid = one_hot_codes(rows, feature.columns)
        categories = np.array([*feature.categories, None], dtype=object)  # code -1 (no category): None
        decoded[feature.name] = FeatureValues(feature, categories[codes], invalid)
    return decoded


#: Rows of a one-hot group examined at once: bounds the temporary arrays (a few bytes per cell) on large tables.
DECODE_ROWS = 65_536


def one_hot_codes(rows: np.ndarray, columns: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, which column of a one-hot group is its single 1 (-1: none, or an invalid row), and which rows are
    invalid (a cell other than 0 and 1, or several 1s). Consecutive columns are read in place, in slices of rows."""
    width = len(columns)
    consecutive = width and list(columns) == list(range(columns[0], columns[0] + width))
    codes = np.full(len(rows), -1, dtype=np.int64)
    invalid = np.zeros(len(rows), dtype=bool)
    for start in range(0, len(rows), DECODE_ROWS):
        part = rows[start:start + DECODE_ROWS]
        group = part[:, columns[0]:columns[0] + width] if consecutive else part[:, list(columns)]
        ones = group == 1.0
        count = ones.sum(axis=1)
        binary = count + (group == 0.0).sum(axis=1) == width
        single = binary & (count == 1)
        codes[start:start + len(part)] = np.where(single, ones.argmax(axis=1) if width else 0, -1)
        invalid[start:start + len(part)] = ~binary | (count > 1)
    return codes, invalid


def categorical_values(feature: MonitoredFeature, values) -> FeatureValues:
    """Category values given directly (predicted classes) as FeatureValues: None is no known category."""
    labels = np.array([None if v is None else str(v) for v in values], dtype=object)
    return FeatureValues(feature, labels, np.zeros(len(labels), dtype=bool))


def numeric_values(feature: MonitoredFeature, values) -> FeatureValues:
    values = np.asarray(values, dtype=np.float64).ravel()
    return FeatureValues(feature, values, np.zeros(len(values), dtype=bool))


# -- statistics.json -------------------------------------------------------------------------------------------


def statistics(decoded: dict[str, FeatureValues], item_count: int) -> dict[str, Any]:
    """Model Monitor's statistics.json of these features over ``item_count`` rows."""
    return {"version": FORMAT_VERSION, "dataset": {"item_count": int(item_count)},
            "features": [_feature_statistics(values) for values in decoded.values()]}


def _feature_statistics(column: FeatureValues) -> dict[str, Any]:
    present = column.present & ~column.invalid
    common = {"num_present": int(present.sum()), "num_missing": int((~present).sum())}
    if column.feature.kind == CATEGORICAL:
        counts = _category_counts(column.values[present])
        buckets = [{"value": value, "count": count} for value, count in counts.items()]
        return {"name": column.feature.name, "inferred_type": STRING,
                "string_statistics": {"common": common, "distinct_count": float(len(counts)),
                                      "distribution": {"categorical": {"buckets": buckets}}}}
    values = column.values[present].astype(np.float64)
    if len(values) == 0:
        return {"name": column.feature.name, "inferred_type": FRACTIONAL,
                "numerical_statistics": {"common": common, "mean": 0.0, "sum": 0.0, "std_dev": 0.0, "min": 0.0,
                                         "max": 0.0, "distribution": {"kll": {"buckets": [], "sketch": _sketch(
                                             values)}}}}
    low, high = float(values.min()), float(values.max())
    return {"name": column.feature.name, "inferred_type": INTEGRAL if _integral(values) else FRACTIONAL,
            "numerical_statistics": {"common": common, "mean": float(values.mean()), "sum": float(values.sum()),
                                     "std_dev": float(values.std()), "min": low, "max": high,
                                     "distribution": {"kll": {"buckets": _buckets(values, low, high),
                                                              "sketch": _sketch(values)}}}}


def _integral(values: np.ndarray) -> bool:
    return bool(np.all(values == np.round(values)))


def _category_counts(labels) -> dict[str, int]:
    """Each label's count, in the labels' order as text (one hashing pass, not a sort of the labels)."""
    import pandas as pd

    if not len(labels):
        return {}
    counts = pd.Series(np.asarray(labels, dtype=object)).astype(str).value_counts(sort=False)
    return {str(v): int(c) for v, c in sorted(counts.items())}


def _buckets(values: np.ndarray, low: float, high: float) -> list[dict[str, float]]:
    """The distribution in BUCKETS equal-width buckets from min to max, as Model Monitor materialises it."""
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": float(len(values))}]
    counts, edges = np.histogram(values, bins=BUCKETS, range=(low, high))
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
            for i in range(BUCKETS)]


def kll_levels(values: np.ndarray, k: int = KLL_K, c: float = KLL_C) -> list[np.ndarray]:
    """A KLL quantile sketch of ``values``: level ``h`` holds items standing for ``2**h`` values each.

    Built in one pass over the sorted values: while the levels hold more than their capacities (``k`` at the top,
    ``k * c**depth`` below, at least 2), the lowest level over its capacity is compacted, keeping every other
    item (an odd one out stays). The kept items' weights add up to ``len(values)`` exactly; a value's rank is off
    by at most about ``len(values) / k``. At most ``k`` values, the sketch is the values themselves.
    """
    levels = [np.sort(np.asarray(values, dtype=np.float64))]
    while True:
        capacities = [max(2, math.ceil(k * c ** (len(levels) - 1 - h))) for h in range(len(levels))]
        if sum(map(len, levels)) <= sum(capacities):
            return levels
        h = next(h for h, level in enumerate(levels) if len(level) > capacities[h])
        items = levels[h]
        odd = len(items) % 2
        promoted = items[odd:][h % 2::2]  # alternate which item of each pair survives, so no side is favoured
        levels[h] = items[:odd]
        if h + 1 == len(levels):
            levels.append(np.empty(0))
        levels[h + 1] = np.sort(np.concatenate([levels[h + 1], promoted]))


def _sketch(values: np.ndarray) -> dict[str, Any]:
    return {"parameters": {"c": KLL_C, "k": float(KLL_K)}, "data": [level.tolist() for level in kll_levels(values)]}


def sketch_sample(feature_statistics: dict) -> tuple[np.ndarray, np.ndarray]:
    """The weighted values a numeric feature's KLL sketch holds: (values, weights), weights summing to its count.

    Raises:
        StoreError: the statistics hold no sketch (not written by this project or by Model Monitor).
    """
    try:
        data = feature_statistics["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"]
    except (KeyError, TypeError) as exc:
        raise StoreError(f"the baseline statistics of {feature_statistics.get('name')!r} hold no KLL sketch. Fix: "
                         f"train the model again, so that its baseline is written.") from exc
    values = np.concatenate([np.asarray(level, dtype=np.float64) for level in data]) if data else np.empty(0)
    weights = np.concatenate([np.full(len(level), 2.0 ** h) for h, level in enumerate(data)]) if data else np.empty(0)
    return values, weights


# -- constraints.json ------------------------------------------------------------------------------------------


def constraints(stats: dict[str, Any], monitoring: MonitoringConfig) -> dict[str, Any]:
    """Model Monitor's constraints.json suggested from a statistics.json, with model.yml's thresholds.

    Each feature: its inferred type, its completeness, ``is_non_negative`` (numbers) or its domain (categories);
    a feature model.yml sets apart (``monitoring.drift.features``) carries its ``monitoring_config_overrides``.
    """
    from modelops.monitoring.drift import threshold_for

    count = stats["dataset"]["item_count"] or 1
    features = []
    drift = monitoring.drift
    for feature in stats["features"]:
        kind = "numerical_statistics" if "numerical_statistics" in feature else "string_statistics"
        numbers = feature[kind]
        entry: dict[str, Any] = {"name": feature["name"], "inferred_type": feature["inferred_type"],
                                 "completeness": numbers["common"]["num_present"] / count}
        if kind == "numerical_statistics":
            entry["num_constraints"] = {"is_non_negative": bool(numbers["min"] >= 0)}
        else:
            entry["string_constraints"] = {"domains": [b["value"] for b in
                                                       numbers["distribution"]["categorical"]["buckets"]]}
        own = drift.features.get(feature["name"])
        if own and own.get("ignore"):
            entry["monitoring_config_overrides"] = {"evaluate_constraints": "Disabled"}
        elif own and "threshold" in own:
            key = "comparison_threshold" if kind == "numerical_statistics" else "categorical_comparison_threshold"
            entry["monitoring_config_overrides"] = {"distribution_constraints": {key: own["threshold"]}}
        features.append(entry)
    distribution = {"perform_comparison": "Enabled",
                    "comparison_threshold": threshold_for(drift.numeric_test, drift.numeric_threshold),
                    "comparison_method": drift.comparison_method.capitalize(),
                    "categorical_comparison_threshold": threshold_for(drift.categorical_test,
                                                                      drift.categorical_threshold)}
    if drift.categorical_test == "linf":  # Model Monitor knows LInfinity and ChiSquared only
        distribution["categorical_drift_method"] = "LInfinity"
    return {"version": FORMAT_VERSION, "features": features,
            "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
                                  "datatype_check_threshold": monitoring.datatype_check_threshold,
                                  "domain_content_threshold": monitoring.domain_content_threshold,
                                  "distribution_constraints": distribution}}


# -- model quality ---------------------------------------------------------------------------------------------


def quality_statistics(config: ModelConfig, y_true: np.ndarray, scores: np.ndarray, *, resamples: int = 50,
                       seed: int = 0) -> dict[str, Any]:
    """Model Monitor's model-quality statistics.json: each metric's value and its bootstrap standard deviation."""
    from modelops.scores import metrics_for

    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    values = metrics_for(config.problem_type, y_true, scores, config.decision_threshold)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples if len(y_true) > 1 else 0):
        rows = rng.integers(0, len(y_true), len(y_true))
        draws.append(metrics_for(config.problem_type, y_true[rows], scores[rows], config.decision_threshold))
    section = {name: {"value": _finite(value),
                      "standard_deviation": _finite(float(np.nanstd([d[name] for d in draws]))) if draws else 0.0}
               for name, value in values.items()}
    return {"version": FORMAT_VERSION,
            "dataset": {"item_count": int(len(y_true)),
                        "evaluation_time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                       "Z")},
            f"{QUALITY_SECTION[config.problem_type]}_metrics": section}


def quality_constraints(config: ModelConfig) -> dict[str, Any]:
    """The quality gates of model.yml as Model Monitor's model-quality constraints.json.

    A gate's ``min`` is ``LessThanThreshold`` (a value below it violates), its ``max`` ``GreaterThanThreshold``;
    a gate with both keeps the bound on the metric's bad side (``min`` where higher is better).
    """
    from modelops.metrics import metric

    section = {}
    for gate in config.quality:
        use_min = gate.min is not None and (gate.max is None or metric(gate.metric).higher_is_better)
        section[gate.metric] = {"threshold": gate.min if use_min else gate.max,
                                "comparison_operator": "LessThanThreshold" if use_min else "GreaterThanThreshold"}
    return {"version": FORMAT_VERSION, f"{QUALITY_SECTION[config.problem_type]}_constraints": section}


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# -- constraint_violations.json --------------------------------------------------------------------------------

#: Model Monitor's data-quality check types.
CHECK_TYPES = ("data_type_check", "completeness_check", "baseline_drift_check", "missing_column_check",
               "extra_column_check", "categorical_values_check")


@dataclass(frozen=True)
class Violation:
    """One entry of constraint_violations.json (``metric_name`` for model-quality violations)."""

    feature_name: str
    constraint_check_type: str
    description: str
    metric_name: str | None = None

    def to_json(self) -> dict[str, str]:
        if self.metric_name is not None:
            return {"metric_name": self.metric_name, "constraint_check_type": self.constraint_check_type,
                    "description": self.description}
        return {"feature_name": self.feature_name, "constraint_check_type": self.constraint_check_type,
                "description": self.description}


def violations_json(violations) -> dict[str, Any]:
    return {"violations": [v.to_json() for v in violations]}


# -- the baseline of a trained model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """A model's baseline files: their URIs, and their contents once read."""

    uris: dict[str, str]  # "<part>_<file>" -> URI, e.g. data_statistics
    files: dict[str, dict] = field(default_factory=dict, repr=False)

    def get(self, part: str, file: str) -> dict:
        return self.files[f"{part}_{file}"]

    def feature(self, part: str, name: str) -> dict | None:
        """One feature's entry in a part's statistics.json (None if the baseline has no such feature)."""
        return next((f for f in self.get(part, "statistics")["features"] if f["name"] == name), None)

    def table(self):
        """One row per monitored feature: its type, completeness and spread in training (a reviewer's view)."""
        import pandas as pd

        rows = []
        for part in ("data", "prediction"):
            stats = self.get(part, "statistics")
            for feature in stats["features"]:
                numbers = feature.get("numerical_statistics") or feature.get("string_statistics")
                row = {"feature": feature["name"], "part": part, "type": feature["inferred_type"],
                       "completeness": numbers["common"]["num_present"] / max(stats["dataset"]["item_count"], 1)}
                if "numerical_statistics" in feature:
                    row.update(mean=numbers["mean"], std_dev=numbers["std_dev"], min=numbers["min"],
                               max=numbers["max"])
                else:
                    buckets = numbers["distribution"]["categorical"]["buckets"]
                    row["categories"] = len(buckets)
                rows.append(row)
        return pd.DataFrame(rows).set_index("feature")

    def _repr_markdown_(self) -> str:
        data = self.get("data", "statistics")
        return (f"Baseline of {len(data['features'])} features over {data['dataset']['item_count']} training rows, "
                f"and of the predictions on {self.get('prediction', 'statistics')['dataset']['item_count']} "
                f"validation rows: `{self.uris['data_statistics']}`")


def baseline_uri(store, model: str, job_name: str, part: str, file: str) -> str:
    """Where a training job's baseline file lives: beside its artifact."""
    return store.uri(model, "training", job_name, "baseline", part, f"{file}.json")


def compute_baseline(config: ModelConfig, encoding, train_rows: np.ndarray, validation_rows: np.ndarray,
                     validation_scores: np.ndarray, validation_labels: np.ndarray) -> dict[str, dict]:
    """The baseline's six files: data (train features), prediction and quality (validation)."""
    data = statistics(decode(train_rows, monitored_features(encoding)), len(train_rows))
    return baseline_files(config, data, len(validation_rows), validation_scores, validation_labels)


def baseline_files(config: ModelConfig, data: dict, validation_rows: int, validation_scores: np.ndarray,
                   validation_labels: np.ndarray) -> dict[str, dict]:
    """The six files from the train features' statistics and the validation split's scores and labels."""
    predicted = prediction_feature(config)
    values = prediction_values(config, validation_scores)
    column = (categorical_values(predicted, values) if predicted.kind == CATEGORICAL
              else numeric_values(predicted, values))
    prediction = statistics({predicted.name: column}, validation_rows)
    return {"data_statistics": data, "data_constraints": constraints(data, config.monitoring),
            "prediction_statistics": prediction, "prediction_constraints": constraints(prediction, config.monitoring),
            "quality_statistics": quality_statistics(config, validation_labels, validation_scores),
            "quality_constraints": quality_constraints(config)}


def _split_file(store, uri: str):
    """A split to read in blocks: its path in a local store, else its bytes (one copy, not a float matrix)."""
    import io

    return store.path(uri) if hasattr(store, "path") else io.BytesIO(store.get_bytes(uri))


def decoded_split(store, uri: str, features: list[MonitoredFeature], booster=None):
    """Every row of a stored split (target first) as the monitored features, read block by block: only the
    decoded features are kept (a number per numeric feature, a label per one-hot group), never the one-hot matrix
    itself, which at 10M rows is ~12 GB as float64. With ``booster``, also its labels and the booster's scores.

    Returns:
        (decoded features, rows, labels or None, scores or None).
    """
    from modelops.training.channels import blocks

    parts: dict[str, list[FeatureValues]] = {feature.name: [] for feature in features}
    labels, scores, rows = [], [], 0
    for x, y in blocks([_split_file(store, uri)], np.float64):
        for name, values in decode(x, features).items():
            parts[name].append(values)
        if booster is not None:
            labels.append(y)
            scores.append(booster.inplace_predict(np.ascontiguousarray(x)))
        rows += len(y)
    decoded = {feature.name: FeatureValues(feature, np.concatenate([p.values for p in parts[feature.name]])
                                           if parts[feature.name] else np.empty(0),
                                           np.concatenate([p.invalid for p in parts[feature.name]])
                                           if parts[feature.name] else np.empty(0, dtype=bool))
               for feature in features}
    if booster is None:
        return decoded, rows, None, None
    return decoded, rows, np.concatenate(labels) if labels else np.empty(0), \
        np.concatenate(scores) if scores else np.empty(0)


def write_baseline(ops: Backend, config: ModelConfig, dataset, training) -> Baseline:
    """Compute a trained model's baseline and write it beside its artifact (before it is registered).

    The statistics are of every train row; the predictions are the artifact's own, loaded as stored (sha256
    checked), on the validation split. Both splits are read block by block (``decoded_split``).

    Raises:
        StoreError: a split, the artifact or the dataset's feature encoding cannot be read, or a write failed.
    """
    from modelops.training.train import load_artifact

    booster = load_artifact(ops.store, training.artifact_uri, training.artifact_sha256)
    features = monitored_features(dataset.feature_encoding)
    train, train_rows, _, _ = decoded_split(ops.store, dataset.files["train"].uri, features)
    _, validation_rows, labels, scores = decoded_split(ops.store, dataset.files["validation"].uri, [], booster)
    files = baseline_files(config, statistics(train, train_rows), validation_rows, scores, labels)
    uris = {}
    for key, content in files.items():
        part, file = key.split("_", 1)
        uris[key] = ops.store.put_bytes(baseline_uri(ops.store, config.name, training.job_name, part, file),
                                        dumps(content), content_type="application/json").uri
    return Baseline(uris, files)


def read_baseline(store, uris: dict[str, str]) -> Baseline:
    """The baseline files a package recorded, read from the store.

    Raises:
        StoreError: the package records no baseline (trained before baselines were written), or a file is
            missing or not JSON.
    """
    missing = [f"{part}_{file}" for part in PARTS for file in FILES if f"{part}_{file}" not in uris]
    if missing:
        raise StoreError(f"the package records no baseline ({', '.join(missing)} missing): it was trained before "
                         f"baselines were written. Fix: train and deploy a new version (`python -m ci run "
                         f"<model folder> --stage train`).")
    files = {}
    for key in (f"{part}_{file}" for part in PARTS for file in FILES):
        try:
            files[key] = json.loads(store.get_bytes(uris[key]))
        except ValueError as exc:
            raise StoreError(f"the baseline file {uris[key]} is not JSON ({exc}). Fix: train the model again.") from exc
    return Baseline(dict(uris), files)


def dumps(value: dict) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode()
