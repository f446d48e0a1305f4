"""How each problem type's test metrics are computed from predictions: pure numpy (pandas only for the tables), no
I/O. ``modelops.metrics`` names them and says which direction is better."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def metrics_for(problem_type: str, y_true, prediction, threshold: float = 0.5) -> dict[str, float]:
    """The test metrics of ``problem_type`` (modelops.metrics.PROBLEM_METRICS) for these predictions."""
    if problem_type == "multiclass":
        return multiclass_metrics(y_true, prediction)
    if problem_type == "binary":
        return binary_metrics(y_true, prediction, threshold)
    return regression_metrics(y_true, prediction)


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
    import pandas as pd

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
    return float((_positive_rank_sum(y_true, score) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _positive_rank_sum(y_true: np.ndarray, score: np.ndarray) -> float:
    """The sum of the positives' ranks among all scores (tied scores share their average rank; any NaN: NaN).

    One sort: a tie group covering ranks ``a+1 .. b`` gives each of its rows ``(a + b + 1) / 2``, a multiple of
    one half, so the sum is exact in float64 (what pandas' ``rank(method="average")`` gives, at a fraction of its
    cost on large arrays).
    """
    if np.isnan(score).any():
        return float("nan")
    order = np.argsort(score)
    ordered = score[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], len(ordered))
    ranks = np.repeat((starts + ends + 1) / 2, ends - starts)
    return float(ranks[y_true[order] == 1].sum())


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
    import pandas as pd

    y_true, probability = _arrays(y_true, probability)
    predicted = (probability >= threshold).astype(int)
    actual = y_true.astype(int)
    counts = [[int(np.sum((actual == a) & (predicted == p))) for p in (0, 1)] for a in (0, 1)]
    return pd.DataFrame(counts, index=pd.Index(["actual 0", "actual 1"]), columns=["predicted 0", "predicted 1"])


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
