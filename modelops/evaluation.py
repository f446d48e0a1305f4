"""Evaluation on the held-out test split: metrics, baselines, quality gates. Pure numpy, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modelops.config import ModelConfig, Threshold
from modelops.errors import QualityGateFailed
from modelops.metrics import improvement


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and MSE of predictions against the truth."""
    y_true, y_pred = _arrays(y_true, y_pred)
    error = y_pred - y_true
    mse = float(np.mean(error**2))
    total = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan")
    return {"rmse": mse**0.5, "mae": float(np.mean(np.abs(error))), "r2": r2, "mse": mse}


def binary_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """ROC AUC and log loss of probabilities; accuracy, precision, recall and F1 at ``threshold``."""
    y_true, probability = _arrays(y_true, probability)
    predicted = probability >= threshold
    positive = y_true == 1
    tp = float(np.sum(predicted & positive))
    fp = float(np.sum(predicted & ~positive))
    fn = float(np.sum(~predicted & positive))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    return {
        "auc": roc_auc(y_true, probability),
        "accuracy": float(np.mean(predicted == positive)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "logloss": float(-np.mean(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))),
    }


def multiclass_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 of the most probable class, and the log loss of the per-class probabilities.

    Macro F1 averages the per-class F1 over the classes that occur in the truth or the predictions (as
    scikit-learn's ``f1_score(average="macro")`` does); a class with no true and no predicted row does not count.

    Args:
        y_true: class indices (0 .. k-1).
        probabilities: one row per example, one column per class (what ``multi:softprob`` predicts).
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    probabilities = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    predicted = probabilities.argmax(axis=1)
    scores = []
    for label in np.union1d(y_true, predicted):
        tp = float(np.sum((predicted == label) & (y_true == label)))
        fp = float(np.sum((predicted == label) & (y_true != label)))
        fn = float(np.sum((predicted != label) & (y_true == label)))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    rows = probabilities / probabilities.sum(axis=1, keepdims=True)
    truth = np.clip(rows[np.arange(len(y_true)), y_true], 1e-15, 1.0)
    return {"accuracy": float(np.mean(predicted == y_true)), "f1_macro": float(np.mean(scores)),
            "logloss": float(-np.mean(np.log(truth)))}


def class_confusion_matrix(y_true: np.ndarray, probabilities: np.ndarray, classes) -> pd.DataFrame:
    """Counts by actual (rows) and predicted (columns, the most probable) class, named by ``classes``."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    predicted = np.atleast_2d(np.asarray(probabilities)).argmax(axis=1)
    k = len(classes)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y_true, predicted), 1)
    names = [str(c) for c in classes]
    return pd.DataFrame(counts, index=pd.Index([f"actual {c}" for c in names]),
                        columns=[f"predicted {c}" for c in names])


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count one half). NaN with one class."""
    y_true, score = _arrays(y_true, score)
    n_pos = int(np.sum(y_true == 1))
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score threshold, from (0, 0) to (1, 1)."""
    tps, fps, _ = _cumulative_counts(y_true, score)
    fpr = np.concatenate([[0.0], fps / fps[-1] if fps[-1] else fps])
    tpr = np.concatenate([[0.0], tps / tps[-1] if tps[-1] else tps])
    return fpr, tpr


def precision_recall_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold (highest threshold first)."""
    tps, fps, _ = _cumulative_counts(y_true, score)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] else tps
    return precision, recall


def confusion_matrix(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> pd.DataFrame:
    """Counts by actual (rows) and predicted (columns) class at ``threshold``."""
    y_true, probability = _arrays(y_true, probability)
    predicted = (probability >= threshold).astype(int)
    actual = y_true.astype(int)
    counts = [[int(np.sum((actual == a) & (predicted == p))) for p in (0, 1)] for a in (0, 1)]
    return pd.DataFrame(counts, index=pd.Index(["actual 0", "actual 1"]), columns=["predicted 0", "predicted 1"])


def baseline_predictions(problem_type: str, y_train: np.ndarray, n: int, n_classes: int = 0) -> np.ndarray:
    """What a model that learned nothing predicts: the training mean, the majority class, or the class shares.

    A multiclass baseline predicts every row with the training split's class shares: its most probable class is
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


def metrics_for(problem_type: str, y_true, prediction, threshold: float = 0.5) -> dict[str, float]:
    """The test metrics of ``problem_type`` (modelops.metrics.PROBLEM_METRICS) for these predictions."""
    if problem_type == "multiclass":
        return multiclass_metrics(y_true, prediction)
    if problem_type == "binary":
        return binary_metrics(y_true, prediction, threshold)
    return regression_metrics(y_true, prediction)


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
    """A trained model's test-split predictions, metrics, the baseline's metrics and feature importance."""

    problem_type: str
    threshold: float
    y_true: np.ndarray = field(repr=False)
    prediction: np.ndarray = field(repr=False)
    baseline_prediction: np.ndarray = field(repr=False)
    metrics: dict[str, float]
    baseline: dict[str, float]
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
        """Metric by metric: the model, the baseline, and the model's lift over the baseline."""
        rows = []
        for name, value in self.metrics.items():
            base = self.baseline.get(name)
            lift = improvement(name, value, base)
            rows.append({"metric": name, "model": value, "baseline": base, "improvement over baseline": lift})
        return pd.DataFrame(rows).set_index("metric")


def evaluate(config: ModelConfig, booster, test: pd.DataFrame, train: pd.DataFrame) -> Evaluation:
    """Predict the test split (target first, as prepared) and compare with the baseline."""
    from modelops.prepare import features_and_target

    X_test, y_test = features_and_target(test)
    _, y_train = features_and_target(train)
    prediction = booster.inplace_predict(X_test)
    baseline = baseline_predictions(config.problem_type, y_train, len(y_test), len(config.data.classes))
    threshold = config.decision_threshold
    return Evaluation(
        problem_type=config.problem_type,
        threshold=threshold,
        y_true=y_test,
        prediction=np.asarray(prediction, dtype=np.float64),
        baseline_prediction=baseline,
        metrics=metrics_for(config.problem_type, y_test, prediction, threshold),
        baseline=metrics_for(config.problem_type, y_test, baseline, threshold),
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


def _cumulative_counts(y_true, score):
    y_true, score = _arrays(y_true, score)
    order = np.argsort(-score, kind="mergesort")
    y_sorted, s_sorted = y_true[order], score[order]
    # One point per distinct threshold: the last index of each run of equal scores.
    distinct = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tps = np.cumsum(y_sorted)[distinct]
    fps = (distinct + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), s_sorted[distinct]


def _arrays(*arrays):
    return tuple(np.asarray(a, dtype=np.float64).ravel() for a in arrays)


def _fmt(value) -> str:
    return "missing" if value is None else f"{value:.4g}"


def evaluate_model(backend, config: ModelConfig, dataset, training) -> Evaluation:
    """Evaluate a training job's artifact (as stored, sha256 checked) on the dataset's test split."""
    from modelops.datasets import read_split
    from modelops.training import load_artifact

    booster = load_artifact(backend.store, training.artifact_uri, training.artifact_sha256)
    return evaluate(config, booster, read_split(backend.store, dataset, "test"),
                    read_split(backend.store, dataset, "train"))
