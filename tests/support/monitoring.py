"""A small synthetic model for the monitoring tests: its encoding, baseline, served version and capture files.

Features: ``size`` (fractional), ``count`` (integral, never negative) and ``colour`` (a one-hot group of
red, green, blue); the prediction is a regression score. Rows are drawn with a seed, so a "live" sample drawn
like the training one is the clean replay, and the tests change one thing at a time.
"""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import yaml

from modelops.config import parse_model_config
from modelops.data.encoding import FeatureEncoding
from modelops.entities import Lineage, PackageVersion
from modelops.monitoring.baseline import compute_baseline, monitored_features, prediction_feature
from modelops.monitoring.monitor import ServedModel
from modelops.serving.capture import capture_record, capture_uri, file_name, hour_folder
from tests.support.paths import ROOT

ENCODING = FeatureEncoding(raw_columns=("size", "count", "colour", "price"), numeric=("size", "count"),
                           categorical=(("colour", ("blue", "green", "red")),),
                           feature_names=("size", "count", "colour_blue", "colour_green", "colour_red"))
COLOURS = np.array([0.2, 0.3, 0.5])  # blue, green, red
ENDPOINT = "tiny-model"


def config(monitoring: dict | None = None, **changes):
    """A regression model config (abalone's, renamed) with data capture on and ``monitoring`` merged in."""
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    raw["name"] = ENDPOINT
    raw["monitoring"] = {"data_capture": {"enabled": True}, **(monitoring or {})}
    raw.update(changes)
    if raw["problem_type"] != "regression":
        raw.pop("tuning", None)  # abalone's search space optimises validation:rmse
    return parse_model_config(copy.deepcopy(raw))


def rows(n: int, seed: int) -> np.ndarray:
    """``n`` encoded rows drawn as the training data was."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10.0, 2.0, n)
    count = rng.integers(0, 20, n).astype(np.float64)
    colour = np.eye(3)[rng.choice(3, n, p=COLOURS)]
    return np.column_stack([size, count, colour])


def scores(features: np.ndarray) -> np.ndarray:
    """What the model predicts for these rows (a fixed linear function, so a changed input moves it)."""
    return 0.5 * features[:, 0] + 0.1 * features[:, 1] + features[:, 4]


def baseline(cfg=None):
    """The baseline files of a model trained on 3,000 rows and validated on 1,000."""
    cfg = cfg or config()
    train, validation = rows(3000, 1), rows(1000, 2)
    labels = scores(validation) + np.random.default_rng(3).normal(0, 0.5, len(validation))
    return compute_baseline(cfg, ENCODING, train, validation, scores(validation), labels)


def package(files: dict, version: int = 1) -> PackageVersion:
    uris = {key: f"file:///baseline/{key}.json" for key in files}
    return PackageVersion(group=ENDPOINT, version=version, status="Approved", package_id=f"local:{ENDPOINT}/1",
                          artifact_uri="file:///model.tar.gz", artifact_sha256="0" * 64, image="local",
                          container_version="3.2-0", xgboost_version="3.2", hyperparameters={}, metrics={},
                          data_sha256="0" * 64, dataset_id="d", lineage=Lineage(), created_at="2026-01-01",
                          baselines=uris)


def served(cfg=None) -> ServedModel:
    """The served version of the tiny model, with its baseline in memory."""
    from modelops.monitoring.baseline import Baseline

    cfg = cfg or config()
    files = baseline(cfg)
    return ServedModel(ENDPOINT, package(files), Baseline(package(files).baselines, files),
                       tuple(monitored_features(ENCODING)), prediction_feature(cfg), len(ENCODING.feature_names))


def csv_body(matrix: np.ndarray) -> str:
    return "".join(",".join("" if v != v else repr(float(v)) for v in row) + "\n" for row in np.atleast_2d(matrix))


def capture_lines(features: np.ndarray, at: float | None = None, *, batch: int = 10,
                  answers: np.ndarray | None = None) -> tuple[list[str], list[str]]:
    """SageMaker capture records of these rows, ``batch`` rows a request: (JSON lines, event ids)."""
    at = time.time() if at is None else at
    answers = scores(features) if answers is None else answers
    lines, ids = [], []
    for start in range(0, len(features), batch):
        event = f"event-{start:06d}"
        request = csv_body(features[start:start + batch]).encode()
        response = "".join(f"{v!r}\n" for v in np.asarray(answers[start:start + batch]).tolist()).encode()
        record = capture_record(event, at, request, "text/csv", response, "text/csv; charset=utf-8")
        lines.append(json.dumps(record))
        ids.append(event)
    return lines, ids


def write_capture(store, lines: list[str], at: float | None = None, *, endpoint: str = ENDPOINT,
                  model: str = ENDPOINT, name: str | None = None) -> str:
    """Put capture lines where an endpoint's capture of that hour goes; returns the object's URI."""
    at = time.time() if at is None else at
    uri = f"{capture_uri(store, model)}/{hour_folder(endpoint, at)}/{name or file_name(at)}"
    return store.put_bytes(uri, ("\n".join(lines) + "\n").encode(), content_type="application/jsonlines").uri
