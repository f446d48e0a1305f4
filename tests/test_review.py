"""The review verdict: gates, then the paired bootstrap of challenger against champion on the same test rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from modelops.config import ChangeRule, ReviewConfig, load_model_config
from modelops.records import Gate, TrainRecord
from modelops.review.bootstrap import paired_bootstrap
from modelops.review.evaluation import check_quality
from modelops.review.verdict import RULE_BETTER, RULE_FIRST, RULE_GATE, RULE_SAME, RULE_UNPAIRED, RULE_WORSE, compare
from modelops.scores import metrics_for
from tests.support.paths import ROOT

ABALONE = load_model_config(ROOT / "abalone_model")
CHURN = load_model_config(ROOT / "churn_model")
RNG = np.random.default_rng(11)
Y = RNG.normal(10, 3.3, 418)  # abalone-like: rings with a standard deviation of 3.3
CHAMPION = Y + RNG.normal(0, 2.05, 418)  # RMSE ~2.1, R2 ~0.55
BETTER = Y + RNG.normal(0, 1.7, 418)  # clearly better on the same rows
SLIGHTLY = CHAMPION * 0.98 + Y * 0.02  # a hair better: the interval is tight but so is the gain
# Better on RMSE, worse on MAE: errors of one size (1.5) against Laplace errors (MAE 1.2, RMSE 1.7).
SPIKY = Y + RNG.laplace(0, 1.2, 418)
EVEN = Y + 1.5 * RNG.choice([-1.0, 1.0], 418)


def trained(config, metrics, version=None, *, library="lib-1", dataset="d1") -> TrainRecord:
    gates = tuple(Gate(r.metric, r.value, r.threshold, r.passed) for r in check_quality(config, metrics).results)
    return TrainRecord(problem_type=config.problem_type, metrics=metrics, null_metrics={}, gates=gates,
                       job_name=f"job-{version}", artifact_uri="file:///a", artifact_sha256="0" * 64,
                       dataset_id=dataset, version=version, library_hash=library)


def scored(config, prediction, version, **kwargs) -> TrainRecord:
    return trained(config, metrics_for(config.problem_type, Y, prediction), version, **kwargs)


def verdict(config, challenger, champion, **kwargs):
    paired = paired_bootstrap(config.problem_type, Y, challenger, champion, metrics=config.metrics,
                              resamples=1000, seed=1)
    return compare(config, scored(config, challenger, 2, **kwargs), scored(config, champion, 1), paired)


def test_first_version_is_approved_when_gates_pass():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.08, "r2": 0.6}, 1), None)
    assert c.verdict == "APPROVE" and "no approved version to beat yet" in c.verdict_line
    assert c.decided_by == RULE_FIRST and c.bootstrap == {}
    assert {r.metric: r.champion for r in c.comparison} == {"rmse": None, "r2": None}


def test_failed_gates_are_rejected_naming_the_gate():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 3.3, "r2": 0.0}), None)
    assert c.verdict == "REJECT" and c.decided_by == RULE_GATE
    assert "rmse = 3.3, required <= 2.3" in c.verdict_line and "r2 = 0, required >= 0.5" in c.verdict_line


def test_an_identical_retrain_is_held_not_approved():
    c = verdict(ABALONE, CHAMPION.copy(), CHAMPION)
    assert c.verdict == "HOLD" and c.decided_by.startswith(RULE_SAME)
    assert "95% interval of the rmse improvement, [+0, +0], includes 0" in c.verdict_line
    rows = {r.metric: r for r in c.comparison}
    assert rows["rmse"].ci95 == (0.0, 0.0) and rows["rmse"].change == "same" and rows["rmse"].improvement == 0
    assert c.bootstrap["resamples"] == 1000 and c.bootstrap["rows"] == 418


def test_better_beyond_the_interval_is_approved_with_intervals_signed_as_improvements():
    c = verdict(ABALONE, BETTER, CHAMPION)
    assert c.verdict == "APPROVE" and c.decided_by == f"{RULE_BETTER} (rmse (any improvement))"
    assert c.verdict_line.startswith("APPROVE: v2 is better than champion v1 beyond the 95% interval on rmse (+")
    rows = {r.metric: r for r in c.comparison}
    assert rows["rmse"].challenger < rows["rmse"].champion and rows["rmse"].improvement > 0  # lower is better
    assert 0 < rows["rmse"].ci95[0] < rows["rmse"].improvement < rows["rmse"].ci95[1]
    assert rows["r2"].improvement > 0 and rows["r2"].change == "better"  # higher is better, the same sign
    assert all(r.gated for r in c.comparison if r.metric in ("rmse", "r2")) and not rows["mae"].gated


def test_worse_beyond_the_interval_on_a_watched_metric_is_rejected():
    c = verdict(ABALONE, CHAMPION, BETTER)
    assert c.verdict == "REJECT" and c.decided_by == RULE_WORSE
    assert "is worse than champion v1 beyond the 95% interval on rmse (-" in c.verdict_line


def test_worse_on_an_unwatched_metric_alone_decides_nothing():
    c = verdict(ABALONE, EVEN, SPIKY)  # better rmse, worse mae (not gated, not primary): approved
    rows = {r.metric: r for r in c.comparison}
    assert rows["mae"].change == "worse" and rows["rmse"].change == "better" and c.verdict == "APPROVE"


def test_minimum_changes_follow_mlflows_metric_threshold():
    slight = verdict(ABALONE, SLIGHTLY, CHAMPION)
    assert slight.verdict == "APPROVE"  # better beyond the interval, and any improvement is enough by default
    gain = {r.metric: r for r in slight.comparison}["rmse"].improvement
    absolute = replace(ABALONE, review=ReviewConfig(rules=(ChangeRule("rmse", min_absolute_change=0.1),)))
    c = verdict(absolute, SLIGHTLY, CHAMPION)
    assert c.verdict == "HOLD" and c.decided_by == f"{RULE_SAME} (rmse (min_absolute_change 0.1))"
    assert f"rmse improves by {gain:+.4g}, less than min_absolute_change 0.1" in c.verdict_line
    relative = replace(ABALONE, review=ReviewConfig(min_relative_change=0.05))
    c = verdict(relative, SLIGHTLY, CHAMPION)
    assert c.verdict == "HOLD" and "less than min_relative_change 0.05 of the champion's" in c.verdict_line
    enough = replace(ABALONE, review=ReviewConfig(min_relative_change=0.05, min_absolute_change=0.2))
    assert verdict(enough, BETTER, CHAMPION).verdict == "APPROVE"


def test_every_metric_the_review_decides_on_must_clear_its_rule():
    both = replace(ABALONE, review=ReviewConfig(rules=(ChangeRule("rmse"), ChangeRule("mae"))))
    c = verdict(both, EVEN, SPIKY)
    assert c.verdict == "REJECT" and "mae" in c.verdict_line  # mae is decided on, so watched: worse rejects


def test_a_champion_that_could_not_be_scored_on_the_same_rows_is_a_hold_with_the_reason():
    c = compare(ABALONE, trained(ABALONE, {"rmse": 2.0, "r2": 0.6}, 2), trained(ABALONE, {"rmse": 2.2, "r2": 0.55}, 1),
                None, ("champion v1 reads 9 features and the challenger's test rows have 10",))
    assert c.verdict == "HOLD" and c.decided_by == RULE_UNPAIRED
    assert c.notes[0].startswith("champion v1 reads 9 features")
    assert {r.metric: r.ci95 for r in c.comparison}["rmse"] is None


def test_review_says_when_the_library_or_the_dataset_changed_since_the_champion():
    same = verdict(ABALONE, CHAMPION.copy(), CHAMPION)
    assert same.notes == ()
    changed = compare(ABALONE, trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 2, library="lib-2", dataset="d2"),
                      trained(ABALONE, {"rmse": 2.1, "r2": 0.57}, 1))
    assert any("modelops library changed since champion v1" in n for n in changed.notes)
    assert any("dataset changed since champion v1 (d1 -> d2)" in n for n in changed.notes)


@pytest.mark.parametrize("config", [ABALONE, CHURN], ids=["abalone", "churn"])
def test_shipped_models_decide_on_their_primary_metric_and_watch_their_gates(config):
    from modelops.review.verdict import watched_metrics

    [rule] = config.review.decided_on(config.problem_type)
    assert rule.metric == ("rmse" if config is ABALONE else "auc")
    assert set(t.metric for t in config.quality) <= set(watched_metrics(config))
    assert config.review.resamples >= 1000
