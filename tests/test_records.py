"""The notebook records: each reads back from its own scraps, and the scraps keep their plain names."""

from __future__ import annotations

import json

import pytest

from ci.stages import NOTEBOOKS, STAGES, model_notebooks, record_type
from modelops.metrics import METRICS, PROBLEM_METRICS, metric
from modelops.records import (
    DeployRecord,
    Gate,
    GateRecord,
    GatherRecord,
    MetricComparison,
    MonitorRecord,
    ReviewRecord,
    TrainRecord,
    TuneRecord,
)

GATHER = GatherRecord(dataset_id="1afe59bb05ca285c", data_sha256="de37" * 16, manifest_uri="file:///m.json",
                      data_source="/data/abalone.data", n_features=10,
                      rows={"train": 2924, "validation": 835, "test": 418},
                      rows_without_target=3, target_summary={"train": {"target_mean": 9.9, "target_std": 3.2},
                                      "test": {"target_mean": 9.8, "target_std": 3.1}})
TRAIN = TrainRecord(problem_type="regression", metrics={"rmse": 2.171, "mae": 1.57, "r2": 0.562, "mse": 4.71},
                    null_metrics={"rmse": 3.279, "mae": 2.3, "r2": -0.001, "mse": 10.75},
                    gates=(Gate("rmse", 2.171, "<= 2.6", True), Gate("r2", 0.562, ">= 0.4", True)),
                    job_name="abalone-model-20261130-1", artifact_uri="file:///model.tar.gz",
                    artifact_sha256="ab" * 32, dataset_id="1afe59bb05ca285c", evaluation_uri="file:///report.json",
                    test_rows=418, top_features=("shell_weight", "sex_I"), version=3, status="PendingManualApproval",
                    package_id="local:abalone-model/3", tree_hash="c0ffee", library_hash="11" * 32)
REVIEW = ReviewRecord(verdict="APPROVE", verdict_line="APPROVE: v3 beats v2", challenger_version=3,
                      champion_version=2,
                      comparison=(MetricComparison("rmse", 2.171, 2.2, 0.029, "better", True, (0.01, 0.05)),
                                  MetricComparison("mae", 1.57, None)),
                      decided_by="gates passed", notes=("the dataset changed",),
                      bootstrap={"method": "paired bootstrap", "rows": 418, "resamples": 2000, "seed": 1729})
TUNE = TuneRecord(tuning_job="abalone-model-0123456789", objective="validation:rmse", maximize=False,
                  best_value=2.137, best_trial=41, current_value=2.175, tuned_value=2.136,
                  tuned_hyperparameters={"eta": 0.03124, "max_depth": 7, "num_round": 270,
                                         "early_stopping_rounds": None},
                  trials=60, trials_complete=41, trials_pruned=19, resumed_trials=20, seconds=61.2,
                  importances={"eta": 0.5, "max_depth": 0.24}, validation_current={"rmse": 2.175, "r2": 0.567},
                  validation_tuned={"rmse": 2.136, "r2": 0.583}, storage="/home/tuning/abalone-model.db",
                  parents=("abalone-model-2611301200ab",))
DEPLOY = DeployRecord(version=3, endpoint_url="http://127.0.0.1:9/invocations", deployed=True,
                      predictions_identical=True, previous_version=2, p50_latency_ms=0.5, p99_latency_ms=1.2,
                      rows_per_second=1e6, batch_rows=10_000, endpoint_metrics={"rmse": 2.171, "r2": 0.562},
                      env_name="production", endpoint="abalone-model", package_id="local:abalone-model/3")
PROMOTE = GateRecord(gate_passed=False, staging_version=3, staging_package_id="local:abalone-model/3",
                        rows_replayed=418, rows_identical=418, errors=2, gate_error_rate=0.004785, gate_p50_ms=1.2,
                        gate_p99_ms=612.5, max_abs_difference=0.0, slo_p50_ms=100, slo_p99_ms=500,
                        slo_error_rate=0.0, production_version=2,
                        gate_failures=("error rate 0.48% (2 of 418 requests) above the SLO's 0.00%",
                                       "p99 latency 612.5 ms above the SLO's 500 ms"))

MONITOR = MonitorRecord(endpoint="churn-model", version=3, since="2026-01-01T00:00:00Z", until="2026-01-02T00:00:00Z",
                        records=72, rows=500, skipped=1, violations=2,
                        violation_checks={"baseline_drift_check": 1, "categorical_values_check": 1},
                        drifted_features=("State",), prediction_distance=0.04, labelled_rows=500,
                        live_metrics={"auc": 0.97, "accuracy": 0.93}, violations_uri="file:///v.json",
                        statistics_uri="file:///s.json")


@pytest.mark.parametrize("record", [GATHER, TRAIN, REVIEW, TUNE, DEPLOY, PROMOTE, MONITOR],
                         ids=lambda r: type(r).__name__)
def test_every_record_reads_back_from_its_scraps_as_they_travel_through_json(record):
    scraps = json.loads(json.dumps(record.to_scraps()))  # what scrapbook and runs.json do to them
    assert type(record).from_scraps(scraps) == record


def test_the_gates_record_says_what_failed_under_names_that_do_not_collide_with_trainings():
    scraps = PROMOTE.to_scraps()
    assert scraps["gate_passed"] is False and scraps["gate_p99_ms"] == 612.5 and scraps["slo_p99_ms"] == 500
    assert scraps["gate_failures"] == list(PROMOTE.gate_failures)
    assert not set(scraps) & set(TRAIN.to_scraps())  # merged into one metrics.json beside train_register's
    assert PROMOTE.headline() == {"gate_passed": False, "gate_p99_ms": 612.5, "gate_error_rate": 0.004785}
    assert record_type("gate") is GateRecord and NOTEBOOKS["gate"].holds == "gated"  # tied to the live server
    assert "gate" in STAGES["gate"].always_runs  # asked for alone, it measures staging as it is now
    assert NOTEBOOKS["deploy"].keyed_by == "env_name" and DEPLOY.to_scraps()["env_name"] == "production"


def test_scraps_keep_the_plain_names_metrics_json_and_reviewers_rely_on():
    scraps = TRAIN.to_scraps()
    assert scraps["rmse"] == 2.171 and scraps["null_rmse"] == 3.279 and scraps["version"] == 3
    assert scraps["quality_passed"] is True and scraps["quality_gates"] == {"rmse": True, "r2": True}
    assert GATHER.to_scraps()["rows_test"] == 418 and GATHER.to_scraps()["target_mean_train"] == 9.9
    assert DEPLOY.to_scraps()["endpoint_rmse"] == 2.171 and "endpoint_metrics" not in DEPLOY.to_scraps()
    # metrics.json merges every notebook's scraps: a validation score must never take a test metric's name.
    assert not set(TUNE.to_scraps()) & (set(METRICS) | set(TRAIN.to_scraps()))
    assert REVIEW.to_scraps()["comparison"][0]["ci95"] == [0.01, 0.05]  # comparison[i].ci95 = [low, high]


def test_the_null_model_reads_back_under_its_old_name_too():
    """Runs recorded and versions registered before the rename carry ``baseline_<metric>``: read both, write new."""
    from pathlib import Path

    from modelops.records import null_model_metrics

    old = {k.replace("null_", "baseline_", 1): v for k, v in TRAIN.to_scraps().items()}
    assert "baseline_rmse" in old and TrainRecord.from_scraps(old) == TRAIN
    shipped = json.loads((Path(__file__).parent / "fixtures" / "registry_v1.json").read_text())["packages"]
    assert null_model_metrics(shipped["abalone-model"][0]["metrics"]) == {"rmse": 3.2}
    assert null_model_metrics(shipped["churn-model"][0]["metrics"]) == {"auc": 0.5}
    assert null_model_metrics({"baseline_rmse": 3.2, "null_rmse": 3.1}) == {"rmse": 3.1}


def test_a_failed_gate_is_part_of_the_record():
    failed = TrainRecord.from_scraps({**TRAIN.to_scraps(), "rmse": 3.0, "quality_gates": {"rmse": False, "r2": True},
                                      "version": None})
    assert not failed.quality_passed and not failed.registered
    assert [g.metric for g in failed.failed_gates] == ["rmse"] and failed.failed_gates[0].value == 3.0


def test_headlines_pick_what_sums_a_notebook_up():
    assert TRAIN.headline() == {"version": 3, "rmse": 2.171, "r2": 0.562}
    assert REVIEW.headline() == {"verdict": "APPROVE", "challenger_version": 3, "champion_version": 2}


def test_records_render_as_a_table_where_a_notebook_glues_them():
    text = TRAIN._repr_markdown_()
    assert "**TrainRecord**" in text and "| `rmse` | 2.171 |" in text


def test_every_metric_has_one_direction_and_belongs_to_a_problem_type():
    assert {m for names in PROBLEM_METRICS.values() for m in names} == set(METRICS)
    assert metric("rmse").improvement(2.171, 3.279) == pytest.approx(1.108)  # what the front page and notebook show
    assert metric("auc").improvement(0.98, 0.5) == pytest.approx(0.48)
    assert metric("logloss").change(0.2, 0.3) == "better" and metric("f1").change(0.5, 0.6) == "worse"


def test_the_stages_table_names_only_notebooks_it_declares():
    for stage in STAGES.values():
        assert set(stage.notebooks) <= set(NOTEBOOKS) and set(stage.always_runs) <= set(stage.notebooks)
    assert model_notebooks() == ["gather_data", "tune", "train_register", "deploy", "gate", "monitor"]
    assert record_type("train_register") is TrainRecord and record_type("tune") is TuneRecord
    assert record_type("monitor") is MonitorRecord and record_type("works") is None
    from ci.freshness import HOLDS, INPUTS
    from ci.supplies import SUPPLIES

    for notebook in NOTEBOOKS.values():
        assert set(notebook.supplies) <= set(SUPPLIES) and set(notebook.inputs) <= set(INPUTS)
        assert notebook.holds is None or notebook.holds in HOLDS
