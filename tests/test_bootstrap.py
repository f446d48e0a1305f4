"""The paired bootstrap: vectorised metrics equal the evaluation's, intervals are seeded and signed as improvements."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.review.bootstrap import paired_bootstrap, resample_weights, weighted_auc, weighted_metrics
from modelops.scores import binary_metrics, regression_metrics, roc_auc

RNG = np.random.default_rng(7)
Y_REGRESSION = RNG.normal(10, 3, 400)
Y_BINARY = (RNG.random(500) < 0.35).astype(float)
# Rounded scores: many ties, which the AUC must count one half.
SCORE = np.round(np.clip(0.35 * Y_BINARY + 0.65 * RNG.random(500), 0, 1), 2)


def test_weights_of_one_give_the_evaluations_metrics_exactly():
    prediction = Y_REGRESSION + RNG.normal(0, 2, 400)
    ones = np.ones((1, 400))
    assert {k: v[0] for k, v in weighted_metrics("regression", Y_REGRESSION, prediction, ones).items()} == \
        pytest.approx(regression_metrics(Y_REGRESSION, prediction), rel=1e-12)
    assert {k: v[0] for k, v in weighted_metrics("binary", Y_BINARY, SCORE, np.ones((1, 500)), 0.4).items()} == \
        pytest.approx(binary_metrics(Y_BINARY, SCORE, 0.4), rel=1e-12)


def test_each_resample_equals_the_metrics_of_the_rows_it_draws():
    weights = resample_weights(500, 5, seed=3)
    assert weights.shape == (5, 500) and (weights.sum(axis=1) == 500).all()
    batch = weighted_metrics("binary", Y_BINARY, SCORE, weights)
    for i, row in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(500), row)
        assert batch["auc"][i] == pytest.approx(roc_auc(Y_BINARY[drawn], SCORE[drawn]), rel=1e-12)
        expected = binary_metrics(Y_BINARY[drawn], SCORE[drawn])
        assert {k: v[i] for k, v in batch.items()} == pytest.approx(expected, rel=1e-12)
    prediction = Y_REGRESSION * 0.8 + 2
    weights = resample_weights(400, 3, seed=4)
    batch = weighted_metrics("regression", Y_REGRESSION, prediction, weights)
    for i, row in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(400), row)
        assert {k: v[i] for k, v in batch.items()} == pytest.approx(
            regression_metrics(Y_REGRESSION[drawn], prediction[drawn]), rel=1e-10)


def test_auc_of_a_resample_with_one_class_is_nan_not_an_error():
    weights = np.zeros((1, 500))
    weights[0, np.flatnonzero(Y_BINARY == 1)[:3]] = 1
    assert np.isnan(weighted_auc(Y_BINARY, SCORE, weights)[0])


def test_identical_predictions_give_an_interval_of_exactly_zero():
    prediction = Y_REGRESSION + RNG.normal(0, 2, 400)
    paired = paired_bootstrap("regression", Y_REGRESSION, prediction, prediction.copy(), resamples=1000)
    for interval in paired.intervals.values():
        assert interval.improvement == 0 and interval.ci95 == (0.0, 0.0)
        assert not interval.better and not interval.worse


def test_a_clearly_better_challenger_is_better_beyond_the_interval_whichever_way_the_metric_points():
    champion = Y_REGRESSION + RNG.normal(0, 2.4, 400)
    challenger = Y_REGRESSION + RNG.normal(0, 1.6, 400)
    paired = paired_bootstrap("regression", Y_REGRESSION, challenger, champion, resamples=1000, seed=1)
    rmse, r2 = paired.intervals["rmse"], paired.intervals["r2"]
    assert rmse.challenger < rmse.champion and rmse.improvement > 0 and rmse.better  # lower is better
    assert r2.challenger > r2.champion and r2.improvement > 0 and r2.better  # higher is better
    assert rmse.ci95[0] < rmse.improvement < rmse.ci95[1]
    reverse = paired_bootstrap("regression", Y_REGRESSION, champion, challenger, resamples=1000, seed=1)
    assert reverse.intervals["rmse"].worse and reverse.intervals["rmse"].ci95 == pytest.approx(
        (-rmse.ci95[1], -rmse.ci95[0]))  # the same draws, mirrored


def test_intervals_are_seeded_and_pairing_narrows_them():
    champion = np.clip(SCORE + RNG.normal(0, 0.05, 500), 0, 1)
    one = paired_bootstrap("binary", Y_BINARY, SCORE, champion, resamples=1000, seed=5)
    again = paired_bootstrap("binary", Y_BINARY, SCORE, champion, resamples=1000, seed=5)
    other = paired_bootstrap("binary", Y_BINARY, SCORE, champion, resamples=1000, seed=6)
    assert one.intervals == again.intervals and one.intervals["auc"].ci95 != other.intervals["auc"].ci95
    assert one.describe() | {"seconds": 0} == {"method": "paired bootstrap", "rows": 500, "resamples": 1000,
                                              "seed": 5, "confidence": 0.95, "seconds": 0}
    # Two near-identical models on the same rows: the paired interval is far narrower than either model's own
    # AUC interval, which is what lets a real difference show through the rows' shared noise.
    weights = resample_weights(500, 1000, seed=5)
    alone = np.percentile(weighted_auc(Y_BINARY, SCORE, weights), [2.5, 97.5])
    low, high = one.intervals["auc"].ci95
    assert high - low < (alone[1] - alone[0]) / 2


def test_resamples_in_blocks_give_the_intervals_of_one_block(monkeypatch):
    """Blocks of resamples drawn from one generator are the whole matrix's rows: same intervals, bounded memory."""
    from modelops.review import bootstrap

    whole = paired_bootstrap("binary", Y_BINARY, SCORE, SCORE[::-1], resamples=1000, seed=7)
    monkeypatch.setattr(bootstrap, "BLOCK_CELLS", 500 * 37)  # blocks of 37 resamples: the last one shorter
    assert len(list(bootstrap.weight_blocks(500, 1000, 7))) == 28
    blocked = paired_bootstrap("binary", Y_BINARY, SCORE, SCORE[::-1], resamples=1000, seed=7)
    assert blocked.intervals == whole.intervals


@pytest.mark.parametrize("levels", [None, "some", 7, 2], ids=["no ties", "some ties", "many ties", "two scores"])
def test_weighted_auc_counts_ties_as_one_half_as_the_plain_auc_does(levels):
    """Each way of summing (no ties; a few, row by row; few distinct scores, group by group) gives the AUC."""
    from modelops.scores import metrics_for

    if levels is None:
        score = SCORE
    elif levels == "some":  # one row in ten shares its neighbour's score
        score = SCORE.copy()
        score[::10] = score[1::10]
    else:
        score = np.round(SCORE * (levels - 1)) / (levels - 1)
    weights = resample_weights(500, 40, seed=9)
    batch = weighted_auc(Y_BINARY, score, weights)
    for i, row in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(500), row)
        assert batch[i] == pytest.approx(metrics_for("binary", Y_BINARY[drawn], score[drawn])["auc"], rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["binary", "regression"])
def test_past_the_resampled_rows_a_subsets_spread_scaled_to_every_row_gives_the_full_intervals(monkeypatch, problem):
    """The m-out-of-n bootstrap: point estimates on every row, the spread from a subset scaled by sqrt(m / n)
    matches the spread of resampling every row (to the error of the quantiles), at a fraction of the cost."""
    from modelops.review import bootstrap

    rng = np.random.default_rng(11)
    n = 8_000
    if problem == "binary":
        y = (rng.random(n) < 0.3).astype(float)
        challenger = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
        champion = np.clip(challenger + rng.normal(0, 0.08, n), 0, 1)
    else:
        y = rng.normal(10, 3, n)
        challenger, champion = y + rng.normal(0, 1.0, n), y + rng.normal(0, 1.05, n)
    whole = paired_bootstrap(problem, y, challenger, champion, resamples=1000, seed=3)
    monkeypatch.setattr(bootstrap, "RESAMPLED_ROWS", 1_000)
    part = paired_bootstrap(problem, y, challenger, champion, resamples=1000, seed=3)
    assert whole.describe().get("rows_resampled") is None and part.describe()["rows_resampled"] == 1_000
    assert part.rows == whole.rows == n
    for name, interval in whole.intervals.items():
        scaled = part.intervals[name]
        assert (scaled.challenger, scaled.champion, scaled.improvement) == (
            interval.challenger, interval.champion, interval.improvement)  # every row's, not the subset's
        width, scaled_width = interval.ci95[1] - interval.ci95[0], scaled.ci95[1] - scaled.ci95[0]
        if width > 0:
            assert scaled_width == pytest.approx(width, rel=0.25), name
            assert scaled.ci95[0] < scaled.improvement < scaled.ci95[1] or scaled_width == 0


def test_multiclass_metrics_per_resample_are_the_plain_metrics_of_the_drawn_rows():
    """Multiclass (a row of class probabilities per test row): weights of one give scores.multiclass_metrics,
    each resample the metrics of the rows it drew, and the paired bootstrap runs (it raised before)."""
    from modelops.scores import multiclass_metrics

    rng = np.random.default_rng(12)
    y = rng.integers(0, 3, 300).astype(float)
    probabilities = rng.dirichlet([1, 1, 1], 300)
    probabilities[np.arange(300), y.astype(int)] += 0.5 * (rng.random(300) < 0.6)
    weights = np.vstack([np.ones(300), resample_weights(300, 6, seed=2)])
    batch = weighted_metrics("multiclass", y, probabilities, weights)
    for i, row in enumerate(weights.astype(int)):
        drawn = np.repeat(np.arange(300), row)
        assert {k: v[i] for k, v in batch.items()} == pytest.approx(
            multiclass_metrics(y[drawn], probabilities[drawn]), rel=1e-12)
    other = np.roll(probabilities, 1, axis=1)
    paired = paired_bootstrap("multiclass", y, probabilities, other, resamples=500, seed=1)
    assert set(paired.intervals) == {"accuracy", "f1_macro", "logloss"}
    assert paired.intervals["accuracy"].better and paired.intervals["logloss"].better
