"""Evaluation on the held-out test split: metrics, the null model's, quality gates. Pure numpy, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelops.backends.base import Backend
from modelops.config import ModelConfig, Threshold
from modelops.entities import TrainingResult
from modelops.errors import QualityGateFailed
from modelops.metrics import improvement
from modelops.scores import class_confusion_matrix, confusion_matrix, metrics_for

if TYPE_CHECKING:
    from modelops.data.datasets import Dataset


def null_predictions(problem_type: str, y_train: np.ndarray, n: int, n_classes: int = 0) -> np.ndarray:
    """What the null model, one that learned nothing, predicts: the training mean, majority class or class shares.

    A multiclass null model predicts every row with the training split's class shares: its most probable class is
    the majority class (its accuracy is the majority's share) and its log loss that of knowing only the shares.
    """
    y_train = np.asarray(y_train, dtype=np.float64)
    if problem_type == "multiclass":
        shares = np.bincount(y_train.astype(np.int64), minlength=n_classes) / len(y_train)
        return np.tile(shares, (n, 1))
    if problem_type == "binary":
        # Majority class as a constant probability: its accuracy is the majority share and its AUC 0.5.
        majority = float(y_train.mean() >= 0.5)
        return np.full(n, majority)
    return np.full(n, float(y_train.mean()))


@dataclass(frozen=True)
class GateResult:
    metric: str
    value: float | None
    threshold: str
    passed: bool


@dataclass(frozen=True)
class QualityReport:
    """Each configured quality gate with the metric's value and whether it passed."""

    model: str
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"metric": r.metric, "value": r.value, "threshold": r.threshold,
                              "result": "passed" if r.passed else "FAILED"} for r in self.results]).set_index("metric")

    def statement(self) -> str:
        """One plain sentence a reviewer can read: which gates passed and which did not."""
        parts = [f"{r.metric} = {_fmt(r.value)} ({'passes' if r.passed else 'FAILS'} {r.threshold})"
                 for r in self.results]
        head = (f"All {len(self.results)} quality gates passed" if self.passed
                else f"{len(self.failures)} of {len(self.results)} quality gates FAILED")
        return f"{head} for {self.model}: " + "; ".join(parts) + "."

    def _repr_markdown_(self) -> str:
        return f"**{self.statement()}**"

    def raise_if_failed(self) -> None:
        """Raise QualityGateFailed naming each failing metric, its value and threshold (nothing registered)."""
        if not self.passed:
            failed = "; ".join(f"{r.metric} = {_fmt(r.value)}, threshold {r.threshold}" for r in self.failures)
            raise QualityGateFailed(
                f"{self.model}: quality gate failed ({failed}); the model was not registered. Fix: improve the "
                f"model (data, features, hyperparameters in model.yml), or change the threshold under quality: "
                f"in model.yml if it is wrong."
            )


def check_quality(config: ModelConfig, metrics: dict[str, float]) -> QualityReport:
    """Compare test metrics with the model config's thresholds."""
    return QualityReport(config.name, tuple(_gate(t, metrics.get(t.metric)) for t in config.quality))


@dataclass(frozen=True)
class Evaluation:
    """A trained model's test-split predictions, metrics, the null model's metrics and feature importance."""

    problem_type: str
    threshold: float
    y_true: np.ndarray = field(repr=False)
    prediction: np.ndarray = field(repr=False)
    null_prediction: np.ndarray = field(repr=False)
    metrics: dict[str, float]
    null_metrics: dict[str, float]
    feature_importance: pd.Series = field(repr=False)
    classes: tuple = ()  # multiclass: the class of each probability column

    def confusion_matrix(self) -> pd.DataFrame | None:
        """Actual against predicted class (binary: at the decision threshold); None for regression."""
        if self.problem_type == "multiclass":
            return class_confusion_matrix(self.y_true, self.prediction, self.classes)
        if self.problem_type == "binary":
            return confusion_matrix(self.y_true, self.prediction, self.threshold)
        return None

    def table(self) -> pd.DataFrame:
        """Metric by metric: the model, the null model, and the model's lift over the null model."""
        rows = []
        for name, value in self.metrics.items():
            null = self.null_metrics.get(name)
            lift = improvement(name, value, null)
            rows.append({"metric": name, "model": value, "null model": null, "improvement over null model": lift})
        return pd.DataFrame(rows).set_index("metric")


def evaluate(config: ModelConfig, booster, test: pd.DataFrame, train: pd.DataFrame) -> Evaluation:
    """Predict the test split (target first, as prepared) and compare with the null model."""
    from modelops.data.prepare import features_and_target

    X_test, y_test = features_and_target(test)
    _, y_train = features_and_target(train)
    prediction = booster.inplace_predict(X_test)
    null = null_predictions(config.problem_type, y_train, len(y_test), len(config.data.classes))
    threshold = config.decision_threshold
    return Evaluation(
        problem_type=config.problem_type,
        threshold=threshold,
        y_true=y_test,
        prediction=np.asarray(prediction, dtype=np.float64),
        null_prediction=null,
        metrics=metrics_for(config.problem_type, y_test, prediction, threshold),
        null_metrics=metrics_for(config.problem_type, y_test, null, threshold),
        feature_importance=feature_importance(booster, list(test.columns[1:])),
        classes=config.data.classes,
    )


def feature_importance(booster, feature_names: list[str], importance_type: str = "gain") -> pd.Series:
    """Importance per named feature (features the trees never split on count as 0), largest first."""
    scores = booster.get_score(importance_type=importance_type)
    values = {name: float(scores.get(f"f{i}", scores.get(name, 0.0))) for i, name in enumerate(feature_names)}
    return pd.Series(values, name=importance_type).sort_values(ascending=False)


def _gate(threshold: Threshold, value: float | None) -> GateResult:
    value = None if value is None else float(value)
    return GateResult(threshold.metric, value, threshold.describe(), threshold.passes(value))


def _fmt(value) -> str:
    return "missing" if value is None else f"{value:.4g}"


def evaluate_model(ops: Backend, config: ModelConfig, dataset: Dataset, training: TrainingResult) -> Evaluation:
    """Evaluate a training job's artifact (as stored, sha256 checked) on the dataset's test split."""
    from modelops.data.datasets import read_split
    from modelops.training.train import load_artifact

    booster = load_artifact(ops.store, training.artifact_uri, training.artifact_sha256)
    return evaluate(config, booster, read_split(ops.store, dataset, "test"), split_targets(ops.store, dataset, "train"))


def split_targets(store, dataset: Dataset, name: str) -> pd.DataFrame:
    """A split's target column alone (the first cell of each stored line), as a one-column frame: all the null model
    needs of the train split. pyarrow's threads split the lines; only that column is converted to numbers."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    body = store.get_bytes(dataset.files[name].uri)
    table = pa_csv.read_csv(io.BytesIO(body), read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
                            convert_options=pa_csv.ConvertOptions(include_columns=["f0"],
                                                                  column_types={"f0": pa.float64()}))
    return pd.DataFrame({dataset.target: table.column(0).to_numpy(zero_copy_only=False)})
