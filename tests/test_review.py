"""The review verdict: challenger against champion."""

from __future__ import annotations

from modelops.config import load_model_config
from modelops.review import compare
from tests.conftest import ROOT

ABALONE = load_model_config(ROOT / "abalone_model")
CHURN = load_model_config(ROOT / "churn_model")


def test_first_version_is_approved_when_gates_pass():
    c = compare(ABALONE, {"rmse": 2.2, "r2": 0.55}, None, challenger_version=1)
    assert c.verdict == "APPROVE" and "no approved version to beat yet" in c.reason
    assert c.table().loc["rmse", "champion"] is None


def test_better_challenger_is_approved():
    c = compare(ABALONE, {"rmse": 2.1, "r2": 0.57, "mae": 1.5}, {"rmse": 2.3, "r2": 0.5, "mae": 1.6},
                challenger_version=4, champion_version=2)
    assert c.verdict == "APPROVE" and "beats champion v2" in c.reason
    assert c.table().loc["rmse", "change"] == "better" and c.table().loc["rmse", "delta"] < 0


def test_worse_challenger_is_held():
    c = compare(CHURN, {"auc": 0.95, "accuracy": 0.93}, {"auc": 0.98, "accuracy": 0.93},
                challenger_version=3, champion_version=1)
    assert c.verdict == "HOLD" and "worse than champion v1 on auc 0.95 vs 0.98" in c.reason
    assert c.line.startswith("HOLD: v3")


def test_noise_within_tolerance_counts_as_same():
    c = compare(ABALONE, {"rmse": 2.171, "r2": 0.561}, {"rmse": 2.165, "r2": 0.563},
                challenger_version=2, champion_version=1)
    assert c.verdict == "APPROVE" and set(c.table()["change"]) == {"same"}


def test_failed_gates_are_rejected():
    c = compare(ABALONE, {"rmse": 3.3, "r2": 0.0}, None, challenger_version=None, quality_passed=False)
    assert c.verdict == "REJECT"


def test_ungated_metric_getting_worse_does_not_hold():
    c = compare(ABALONE, {"rmse": 2.1, "r2": 0.57, "mae": 1.9}, {"rmse": 2.2, "r2": 0.55, "mae": 1.5},
                challenger_version=2, champion_version=1)
    assert c.verdict == "APPROVE" and c.table().loc["mae", "change"] == "worse"
