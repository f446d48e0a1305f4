"""The paired bootstrap: how sure is it that the challenger beats the champion on the same test rows?

Both models score the same rows; each resample draws the rows with replacement (as counts: a row of weights
summing to the number of rows) and computes each metric for both models on that same draw, so the noise
both share (a hard row, an easy row) cancels in the difference. Every metric is computed for a block of
resamples at once from its weights matrix (weighted sums; AUC from per-score-group weight sums), no Python loop
over resamples; the blocks keep memory bounded at a million rows. The interval is the 2.5th to 97.5th percentile
of the *improvement* (signed as in ``modelops.metrics``: positive = the challenger is better), the same sign the
review, metrics.json and the front page use.

Measured with ``benchmarks/bootstrap.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from modelops.metrics import metric as metric_named

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricInterval:
    """One metric on the same rows: both models' values, the improvement and its 95% interval."""

    metric: str
    challenger: float
    champion: float
    improvement: float
    ci95: tuple[float, float]

    @property
    def better(self) -> bool:
        """Better beyond the interval: its lower end is above 0."""
        return self.ci95[0] > 0

    @property
    def worse(self) -> bool:
        """Worse beyond the interval: its upper end is below 0."""
        return self.ci95[1] < 0


@dataclass(frozen=True)
class PairedBootstrap:
    """Every metric of a paired comparison, with how it was resampled."""

    intervals: dict[str, MetricInterval]
    rows: int
    resamples: int
    seed: int
    seconds: float
    rows_resampled: int | None = None  # a subset's rows when there were more than RESAMPLED_ROWS

    def describe(self) -> dict:
        subset = {"rows_resampled": self.rows_resampled} if self.rows_resampled else {}
        return {"method": "paired bootstrap", "rows": self.rows, "resamples": self.resamples, "seed": self.seed,
                "confidence": CONFIDENCE, "seconds": round(self.seconds, 4), **subset}


#: Rows the resamples draw from at most. Past it, the intervals' spread is measured on a seeded subset of this
#: many rows and scaled by sqrt(subset / rows), the rate at which a metric's sampling spread shrinks with the rows
#: (the m-out-of-n bootstrap); the point estimates stay those of every row. Resampling all of a million rows
#: 2,000 times costs minutes where this costs seconds, for intervals that differ by the error of their quantiles.
RESAMPLED_ROWS = 20_000
#: Cells of the weights matrix held at once (float64: 64 MB): resamples are computed in blocks of rows x this.
BLOCK_CELLS = 8_000_000


def resample_weights(rows: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` x ``rows`` counts: how often each row is drawn in each resample (rows sum to ``rows``)."""
    return np.vstack(list(weight_blocks(rows, resamples, seed)))


def weight_blocks(rows: int, resamples: int, seed: int):
    """``resample_weights`` in blocks of resamples of about ``BLOCK_CELLS`` cells, drawn from one generator (the
    blocks stacked are the whole matrix): memory stays bounded whatever the rows.

    Drawn as row indices and counted (3x faster than ``Generator.multinomial`` for 2,000 x 500, same distribution).
    """
    rng = np.random.default_rng(seed)
    step = max(1, BLOCK_CELLS // max(rows, 1))
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        drawn = rng.integers(0, rows, size=(count, rows)) + rows * np.arange(count)[:, None]
        yield np.bincount(drawn.ravel(), minlength=count * rows).reshape(count, rows).astype(np.float64)


def weighted_metrics(problem_type: str, y_true: np.ndarray, prediction: np.ndarray, weights: np.ndarray,
                     threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Each metric of ``prediction`` for every row of ``weights`` (a weight of 1 everywhere gives the plain metric,
    equal to ``modelops.review.evaluation``'s)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    n = weights.sum(axis=1)
    if problem_type == "multiclass":
        return _multiclass(y.astype(np.int64), np.atleast_2d(np.asarray(prediction, dtype=np.float64)), weights, n)
    p = np.asarray(prediction, dtype=np.float64).ravel()
    if problem_type == "binary":
        return _binary(y, p, weights, n, threshold)
    error = p - y
    sse = _dot(weights, error**2)
    total = _dot(weights, y**2) - _dot(weights, y) ** 2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(total > 0, 1.0 - sse / total, np.nan)
    return {"rmse": np.sqrt(sse / n), "mae": _dot(weights, np.abs(error)) / n, "r2": r2, "mse": sse / n}


def _dot(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``weights @ values`` without BLAS: a threaded BLAS on a busy machine spends more on its threads fighting
    over the cores than on the product (benchmarks/README.md, section 8)."""
    return np.einsum("ij,j->i", weights, np.asarray(values, dtype=np.float64))


def _binary(y, p, weights, n, threshold) -> dict[str, np.ndarray]:
    predicted = p >= threshold
    positive = y == 1
    tp = _dot(weights, predicted & positive)
    fp = _dot(weights, predicted & ~positive)
    fn = _dot(weights, ~predicted & positive)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    loss = -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    return {"auc": weighted_auc(y, p, weights), "accuracy": _dot(weights, predicted == positive) / n,
            "precision": precision, "recall": recall, "f1": f1, "logloss": _dot(weights, loss) / n}


def _multiclass(y, probabilities, weights, n) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and log loss as ``modelops.scores.multiclass_metrics`` computes them, per resample: macro
    F1 averages over the classes a resample has a true or a predicted row of."""
    predicted = probabilities.argmax(axis=1)
    f1 = np.zeros(len(weights))
    counted = np.zeros(len(weights))
    for label in np.union1d(y, predicted):
        tp = _dot(weights, (predicted == label) & (y == label))
        fp = _dot(weights, (predicted == label) & (y != label))
        fn = _dot(weights, (predicted != label) & (y == label))
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 += np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        counted += (tp + fp + fn) > 0
    rows = probabilities / probabilities.sum(axis=1, keepdims=True)
    truth = np.clip(rows[np.arange(len(y)), y], 1e-15, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"accuracy": _dot(weights, predicted == y) / n, "f1_macro": np.where(counted > 0, f1 / counted, np.nan),
                "logloss": _dot(weights, -np.log(truth)) / n}


def weighted_auc(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for every row of ``weights`` (Mann-Whitney, ties count one half), without a loop over rows.

    The scores are sorted once. Per resample, the negatives' weights are summed cumulatively in score order; a
    positive row then counts the negatives' weight below its group of equal scores plus half of the group's own:
    half the cumulative sum just before its group plus half of it at the group's end. Without ties that is the
    cumulative sum at the row itself (a positive row adds no negative weight), one gather of the positives'
    columns. With few distinct scores, weights are summed per group first.
    """
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    positive = np.asarray(y_true)[order] == 1
    ordered = weights[:, order]
    at = np.flatnonzero(positive)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    if len(starts) >= len(s) // 2:
        cumulative = np.cumsum(np.where(positive, 0.0, ordered), axis=1)
    if len(starts) == len(s):
        numerator = _rowwise_dot(ordered[:, at], cumulative[:, at])
    elif len(starts) < len(s) // 2:  # few distinct scores: sums per group are cheaper than gathers per row
        pos = np.add.reduceat(np.where(positive, ordered, 0.0), starts, axis=1)
        neg = np.add.reduceat(np.where(positive, 0.0, ordered), starts, axis=1)
        numerator = (pos * (np.cumsum(neg, axis=1) - 0.5 * neg)).sum(axis=1)
    else:
        group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1  # each sorted row's group
        ends = np.r_[starts[1:], len(s)]  # one past each group's last row
        padded = np.hstack([np.zeros((len(weights), 1)), cumulative])
        around = padded[:, starts[group[at]]] + padded[:, ends[group[at]]]
        numerator = 0.5 * _rowwise_dot(ordered[:, at], around)
    positives = ordered[:, at].sum(axis=1)
    pairs = positives * (weights.sum(axis=1) - positives)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, numerator / pairs, np.nan)


def _rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def paired_bootstrap(problem_type: str, y_true, challenger, champion, *, metrics: tuple[str, ...] | None = None,
                     resamples: int = 2000, seed: int = 0, threshold: float = 0.5) -> PairedBootstrap:
    """The improvement of ``challenger`` over ``champion`` (predictions on the same rows) with 95% intervals.

    Args:
        problem_type: ``regression``, ``binary`` or ``multiclass`` (then each prediction is a row of class
            probabilities).
        y_true: the rows' labels.
        challenger, champion: each model's predictions (probabilities for binary) on those rows, in that order.
        metrics: the metrics to report (default: all of the problem type's).
        resamples: bootstrap resamples (the review uses at least 1,000).
        seed: the resampling seed: the same inputs and seed give the same intervals.
        threshold: the decision threshold of the binary metrics that need one.
    """
    started = time.perf_counter()
    y = np.asarray(y_true, dtype=np.float64).ravel()
    challenger, champion = (np.asarray(p, dtype=np.float64) for p in (challenger, champion))
    if problem_type != "multiclass":  # multiclass: one row of class probabilities per test row
        challenger, champion = challenger.ravel(), champion.ravel()
    rows = len(y)
    every = np.ones((1, rows))
    full = [weighted_metrics(problem_type, y, p, every, threshold) for p in (challenger, champion)]
    resampled_rows = None
    if rows > RESAMPLED_ROWS:
        subset = np.sort(np.random.default_rng([seed, 1]).choice(rows, RESAMPLED_ROWS, replace=False))
        y, challenger, champion = y[subset], challenger[subset], champion[subset]
        resampled_rows = RESAMPLED_ROWS
    ours: dict[str, list[np.ndarray]] = {}
    theirs: dict[str, list[np.ndarray]] = {}
    # The subset's own estimate first (every row's is ``full``): the draws depart from it.
    subset_estimate = [np.ones((1, len(y)))] if resampled_rows else []
    for weights in (*subset_estimate, *weight_blocks(len(y), resamples, seed)):
        for found, prediction in ((ours, challenger), (theirs, champion)):
            for name, values in weighted_metrics(problem_type, y, prediction, weights, threshold).items():
                found.setdefault(name, []).append(values)
    intervals = {}
    tail = (1 - CONFIDENCE) / 2 * 100
    for name in metrics or tuple(ours):
        better = metric_named(name).higher_is_better

        def gain(a, b, better=better):
            return a - b if better else b - a

        point = float(gain(full[0][name], full[1][name])[0])
        draws = gain(np.concatenate(ours[name]), np.concatenate(theirs[name]))
        if resampled_rows:  # each draw's departure from the subset's estimate, scaled to all rows, around theirs
            draws = point + (draws[1:] - draws[0]) * np.sqrt(resampled_rows / rows)
        draws = draws[np.isfinite(draws)]
        low, high = (np.percentile(draws, [tail, 100 - tail]) if len(draws) else (np.nan, np.nan))
        intervals[name] = MetricInterval(name, float(full[0][name][0]), float(full[1][name][0]), point,
                                         (float(low), float(high)))
    return PairedBootstrap(intervals, rows, resamples, seed, time.perf_counter() - started, resampled_rows)
