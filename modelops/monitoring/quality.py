"""Live quality, when ground truth is given: labels keyed by event id joined to the captured answers, and the
live metrics checked against the quality gates."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelops.config import ModelConfig, canonical_label
from modelops.errors import DataError
from modelops.monitoring.baseline import (
    Violation,
)
from modelops.monitoring.traffic import CapturedData

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
    from modelops.review.evaluation import check_quality
    from modelops.scores import metrics_for

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
