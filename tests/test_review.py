"""The review verdict: challenger against champion, both as the backend recorded them."""

from __future__ import annotations

import pytest

from modelops.config import load_model_config
from modelops.evaluation import check_quality
from modelops.records import Gate, TrainRecord
from modelops.review import compare
from tests.conftest import ROOT

ABALONE = load_model_config(ROOT / "abalone_model")
CHURN = load_model_config(ROOT / "churn_model")


def trained(config, metrics, version=None, *, library="lib-1", dataset="d1") -> TrainRecord:
    gates = tuple(Gate(r.metric, r.value, r.threshold, r.passed) for r in check_quality(config, metrics).results)
    return TrainRecord(problem_type=config.problem_type, metrics=metrics, baseline={}, gates=gates,
                       job_name=f"job-{version}", artifact_uri="file:///a", artifact_sha256="0" * 64,
                       dataset_id=dataset, version=version, library_hash=library)


def test_first_version_is_approved_when_gates_pass():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.2, "r2": 0.55}, 1), None)
    assert c.verdict == "APPROVE" and "no approved version to beat yet" in c.verdict_line
    assert c.decided_by == "gates passed; no approved champion"
    assert {r.metric: r.champion for r in c.comparison} == {"rmse": None, "r2": None}


def test_better_challenger_is_approved_and_improvements_are_positive_whichever_way_the_metric_points():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.1, "r2": 0.57, "mae": 1.5}, 4),
                trained(ABALONE, {"rmse": 2.3, "r2": 0.5, "mae": 1.6}, 2))
    assert c.verdict == "APPROVE" and "beats champion v2" in c.verdict_line
    rows = {r.metric: r for r in c.comparison}
    assert rows["rmse"].change == "better" and rows["rmse"].improvement == pytest.approx(0.2)  # lower is better
    assert rows["r2"].change == "better" and rows["r2"].improvement == pytest.approx(0.07)  # higher is better


def test_worse_challenger_is_held():
    c = compare(CHURN, trained(CHURN, {"auc": 0.95, "accuracy": 0.93}, 3),
                trained(CHURN, {"auc": 0.98, "accuracy": 0.93}, 1))
    assert c.verdict == "HOLD" and "worse than champion v1 on auc 0.95 vs 0.98" in c.verdict_line
    assert c.verdict_line.startswith("HOLD: v3")
    assert {r.metric: r.improvement for r in c.comparison}["auc"] == pytest.approx(-0.03)


def test_noise_within_tolerance_counts_as_same():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.171, "r2": 0.561}, 2),
                trained(ABALONE, {"rmse": 2.165, "r2": 0.563}, 1))
    assert c.verdict == "APPROVE" and {r.change for r in c.comparison} == {"same"}


def test_failed_gates_are_rejected_naming_the_gate():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 3.3, "r2": 0.0}), None)
    assert c.verdict == "REJECT" and c.decided_by == "a quality gate failed"
    assert "rmse = 3.3, required <= 2.6" in c.verdict_line and "r2 = 0, required >= 0.4" in c.verdict_line


def test_ungated_metric_getting_worse_does_not_hold():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.1, "r2": 0.57, "mae": 1.9}, 2),
                trained(ABALONE, {"rmse": 2.2, "r2": 0.55, "mae": 1.5}, 1))
    assert c.verdict == "APPROVE" and {r.metric: r.change for r in c.comparison}["mae"] == "worse"


def test_review_says_when_the_library_or_the_dataset_changed_since_the_champion():
    same = compare(ABALONE, trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 2),
                   trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 1))
    assert same.notes == ()
    changed = compare(ABALONE, trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 2, library="lib-2", dataset="d2"),
                      trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 1))
    assert any("modelops library changed since champion v1" in n for n in changed.notes)
    assert any("dataset changed since champion v1 (d1 -> d2)" in n for n in changed.notes)
