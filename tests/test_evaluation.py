"""Evaluation maths on small known cases, cross-checked with scikit-learn, and the quality gates."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.config import load_model_config
from modelops.errors import QualityGateFailed
from modelops.review.evaluation import check_quality, null_predictions
from modelops.scores import (
    binary_metrics,
    confusion_matrix,
    precision_recall_curve,
    regression_metrics,
    roc_auc,
    roc_curve,
)
from tests.support.paths import ROOT


def test_regression_metrics_match_scikit_learns_documented_example():
    m = regression_metrics([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
    assert m["mse"] == pytest.approx(0.375)
    assert m["rmse"] == pytest.approx(0.375**0.5)
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(0.9486081370449679)  # scikit-learn's documented example


def test_mean_null_model_has_zero_r2():
    y = np.array([1.0, 2, 3, 4])
    m = regression_metrics(y, null_predictions("regression", y, 4))
    assert m["r2"] == pytest.approx(0.0)
    assert m["rmse"] == pytest.approx(np.std(y))


def test_auc_matches_known_cases_and_is_nan_with_one_class():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts one half
    assert roc_auc([0, 0, 1], [0.1, 0.2, 0.9]) == 1.0
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(roc_auc([0, 1], [0.2, np.nan]))


def test_roc_auc_ranks_ties_as_pandas_average_ranks_do():
    import pandas as pd

    rng = np.random.default_rng(4)
    y, score = rng.integers(0, 2, 5000), np.round(rng.random(5000), 2)  # many ties
    ranks = pd.Series(score).rank(method="average").to_numpy()
    p = int(y.sum())
    assert roc_auc(y, score) == (ranks[y == 1].sum() - p * (p + 1) / 2) / (p * (5000 - p))


def test_binary_metrics_count_positives_at_the_threshold():
    y = [1, 1, 1, 0, 0, 0, 0, 1]
    p = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.4, 0.55]
    m = binary_metrics(y, p, threshold=0.5)
    # predicted positive: 0.9, 0.8, 0.6, 0.55 -> TP 3, FP 1, FN 1, TN 3
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4) and m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(0.75)
    assert confusion_matrix(y, p).to_numpy().tolist() == [[3, 1], [1, 3]]
    assert binary_metrics(y, p, threshold=0.95)["precision"] == 0.0  # nothing predicted positive


def test_majority_null_model():
    base = null_predictions("binary", np.array([1, 1, 0]), 5)
    assert base.tolist() == [1.0] * 5
    m = binary_metrics([0, 1, 1, 0, 1], base)
    assert m["auc"] == 0.5 and m["accuracy"] == pytest.approx(0.6)


def test_curves_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = np.round(y * 0.3 + rng.random(500), 2)  # rounded: many ties
    assert roc_auc(y, score) == pytest.approx(metrics.roc_auc_score(y, score))
    fpr, tpr = roc_curve(y, score)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    precision, recall = precision_recall_curve(y, score)
    ref_p, ref_r, _ = metrics.precision_recall_curve(y, score, drop_intermediate=False)
    assert np.allclose(precision, ref_p[:-1][::-1]) and np.allclose(recall, ref_r[:-1][::-1])
    m = binary_metrics(y, score / score.max(), 0.5)
    assert m["f1"] == pytest.approx(metrics.f1_score(y, score / score.max() >= 0.5))
    assert m["logloss"] == pytest.approx(metrics.log_loss(y, np.clip(score / score.max(), 1e-15, 1 - 1e-15)))
    y_reg = rng.random(100)
    pred = y_reg + rng.normal(0, 0.1, 100)
    assert regression_metrics(y_reg, pred)["r2"] == pytest.approx(metrics.r2_score(y_reg, pred))


def test_quality_gates_pass_and_fail():
    config = load_model_config(ROOT / "abalone_model")
    good = check_quality(config, {"rmse": 2.2, "r2": 0.55})
    assert good.passed and good.statement().startswith("All 2 quality gates passed for abalone-model")
    good.raise_if_failed()
    bad = check_quality(config, {"rmse": 3.3, "r2": 0.55})
    assert not bad.passed and [r.metric for r in bad.failures] == ["rmse"]
    assert "1 of 2 quality gates FAILED" in bad.statement()
    with pytest.raises(QualityGateFailed, match=r"rmse = 3\.3, threshold <= 2\.3.*not registered"):
        bad.raise_if_failed()
    missing = check_quality(config, {"r2": 0.55})
    assert not missing.passed and "rmse = missing" in missing.statement()


def test_a_scatter_of_a_large_test_split_draws_a_seeded_sample_and_says_so():
    from types import SimpleNamespace

    from modelops.notebook import plots

    rng = np.random.default_rng(0)
    y = rng.normal(size=250_000)
    evaluation = SimpleNamespace(y_true=y, prediction=y + rng.normal(0, 0.1, len(y)), null_prediction=np.zeros(1),
                                 metrics={"rmse": 0.1, "mae": 0.08}, null_metrics={"rmse": 1.0})
    [points] = plots.predicted_vs_actual(evaluation).axes[0].collections
    assert len(points.get_offsets()) == plots.SCATTER_POINTS
    assert points.get_label() == "sample of 20,000 of 250,000 rows"
    left = plots.residuals(evaluation).axes[0]
    assert len(left.collections[0].get_offsets()) == plots.SCATTER_POINTS
    assert left.get_title() == "sample of 20,000 of 250,000 rows"
    assert np.array_equal(plots.scatter_rows(250_000)[0], plots.scatter_rows(250_000)[0])  # seeded
    assert plots.scatter_rows(300)[1] == "300 rows" and len(plots.scatter_rows(300)[0]) == 300


def test_the_null_model_reads_only_the_train_splits_targets_and_gets_what_the_whole_split_holds():
    import io
    from types import SimpleNamespace

    import pandas as pd

    from modelops.review.evaluation import split_targets

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(np.column_stack([rng.normal(size=300), rng.normal(size=(300, 4))]))
    frame.iloc[::7, 2] = np.nan  # empty feature cells do not matter
    body = frame.to_csv(header=False, index=False, lineterminator="\n").encode()
    store = SimpleNamespace(get_bytes=lambda uri: body)
    dataset = SimpleNamespace(target="rings", files={"train": SimpleNamespace(uri="s3://bucket/train.csv")})
    targets = split_targets(store, dataset, "train")
    assert list(targets.columns) == ["rings"]
    whole = pd.read_csv(io.BytesIO(body), header=None, dtype="float64")
    np.testing.assert_array_equal(targets["rings"].to_numpy(), whole[0].to_numpy())
