"""The metric registry: every test metric's name, direction and problem types, defined once (how each is
computed from predictions: ``modelops.scores``).

The notebook's evaluation table, the review's comparison and the front page all read a metric's direction
here, so a change is shown with one sign everywhere: an *improvement* is positive when the new value is better
(RMSE 3.279 -> 2.171 is an improvement of +1.108, AUC 0.5 -> 0.98 one of +0.48).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A change smaller than this share of the old value counts as "same" (retraining on the same data moves
#: metrics by about this much).
TOLERANCE = 0.01


@dataclass(frozen=True)
class Metric:
    """One test metric: how it is named and which direction is better."""

    name: str
    title: str
    higher_is_better: bool

    def improvement(self, new: float | None, old: float | None) -> float | None:
        """``new`` against ``old``, signed so that a positive number is better (None if either is missing)."""
        if new is None or old is None:
            return None
        return float(new) - float(old) if self.higher_is_better else float(old) - float(new)

    def change(self, new: float | None, old: float | None, tolerance: float = TOLERANCE) -> str:
        """``better``, ``worse`` or ``same`` (within ``tolerance`` of the old value); ``-`` if either is missing."""
        gain = self.improvement(new, old)
        if gain is None:
            return "-"
        if abs(gain) <= tolerance * max(abs(float(old)), 1e-12):
            return "same"
        return "better" if gain > 0 else "worse"


def _metrics(*rows: tuple[str, str, bool]) -> dict[str, Metric]:
    return {name: Metric(name, title, higher) for name, title, higher in rows}


#: Every metric the project reports, by name (the plain names of metrics.json).
METRICS: dict[str, Metric] = _metrics(
    ("rmse", "root mean squared error", False),
    ("mae", "mean absolute error", False),
    ("r2", "R²", True),
    ("mse", "mean squared error", False),
    ("auc", "ROC AUC", True),
    ("accuracy", "accuracy", True),
    ("precision", "precision", True),
    ("recall", "recall", True),
    ("f1", "F1", True),
    ("f1_macro", "macro F1", True),
    ("logloss", "log loss", False),
)

#: The test metrics each problem type reports, in display order; quality gates may name only these.
PROBLEM_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2", "mse"),
    "binary": ("auc", "accuracy", "precision", "recall", "f1", "logloss"),
    "multiclass": ("accuracy", "f1_macro", "logloss"),
}

#: The metric that sums a model up (the pipeline's table, the review's tie-break), per problem type.
PRIMARY_METRIC: dict[str, str] = {"regression": "rmse", "binary": "auc", "multiclass": "accuracy"}


#: XGBoost eval metrics for which higher is better, as the SageMaker XGBoost container lists them
#: (``constants/xgb_constants.py`` ``XGB_MAXIMIZE_METRICS``): its early stopping maximises these, minimises others.
XGB_MAXIMIZE_METRICS = frozenset({"accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro",
                                  "map", "ndcg", "precision", "r2", "recall", "precision_macro", "precision_micro",
                                  "recall_macro", "recall_micro"})

#: The validation metrics a hyperparameter search may optimise, per problem type, with whether higher is better.
#: Named as the SageMaker XGBoost container names its tuning objectives (``validation:<name>``; directions from
#: its ``XGB_MAXIMIZE_METRICS``/``XGB_MINIMIZE_METRICS``). Only XGBoost's own eval metrics: the container's
#: extra ones (``f1``, ``r2``, ...) are Python fevals the local backend does not reproduce.
TUNING_OBJECTIVES: dict[str, dict[str, bool]] = {
    problem: {name: name in XGB_MAXIMIZE_METRICS for name in names}
    for problem, names in {"regression": ("rmse", "mae", "mape", "rmsle", "mphe"),
                           "binary": ("auc", "aucpr", "logloss", "error"),
                           "multiclass": ("mlogloss", "merror")}.items()
}

#: The tuning objective each problem type optimises when model.yml names none.
DEFAULT_TUNING_OBJECTIVE: dict[str, str] = {"regression": "rmse", "binary": "auc", "multiclass": "mlogloss"}


def metric(name: str) -> Metric:
    """The metric called ``name``.

    Raises:
        KeyError: no such metric (the message lists the known ones).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None


def is_metric(name: str) -> bool:
    return name in METRICS


def improvement(name: str, new: float | None, old: float | None) -> float | None:
    """Shorthand for ``metric(name).improvement(new, old)``."""
    return metric(name).improvement(new, old)
