"""Monitoring on SageMaker Model Monitor: the record preprocessor on real capture records, one capture checked
both ways (the local checks and Model Monitor's, as documented), the job requests against botocore's service model
(Stubber: moto has no Model Monitor), and the analyzer's files read back into the monitor's report."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from modelops.backends.local import LocalBackend
from modelops.backends.sagemaker.model_monitor import SCHEDULES, window_offsets
from modelops.errors import ConfigError, ProcessingFailed
from modelops.monitoring.analyzer import (
    OVERRIDES,
    analyzer_baseline,
    preprocessor_script,
    read_violations,
    report_from_analyzer,
)
from modelops.monitoring.baseline import decode
from modelops.monitoring.checks import check_traffic
from modelops.monitoring.drift import NO_CATEGORY
from modelops.monitoring.monitor import check_window, record_monitoring
from modelops.monitoring.traffic import Window, read_capture
from tests.support import monitoring as tiny
from tests.support.analyzer import analyze, preprocess
from tests.support.aws import MOTO_BUCKET, sagemaker_on_moto
from tests.support.model_monitor import JOB_ARN, NOW, ModelMonitorStub

FIXTURES = Path(__file__).parent / "fixtures" / "model_monitor"
REPORTS = f"s3://{MOTO_BUCKET}/modelops/tiny-model/model-monitor/tiny-model/reports/run-1"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def checks(report) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in report.violations}


# -- the record preprocessor -----------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["documented", "sdk", "dict"])
def test_the_preprocessor_gives_each_captured_row_the_features_the_local_monitor_reads(tmp_path, form):
    cfg, served = tiny.config(), tiny.served()
    features = tiny.rows(40, 5)
    features[3, 2:5] = 0  # a category never seen in training, sent as none of its columns
    features[4, 1] = np.nan  # a missing count
    lines, _ = tiny.capture_lines(features, batch=7)

    rows = preprocess(preprocessor_script(cfg, served), lines, tmp_path, form)

    decoded = decode(features, list(served.features))
    assert len(rows) == 40 and set(rows[0]) == {"size", "count", "colour", "prediction"}
    assert [r["size"] for r in rows] == pytest.approx(decoded["size"].values.tolist())
    assert rows[4]["count"] is None and rows[5]["count"] == features[5, 1]
    local_colours = [NO_CATEGORY if v is None else v for v in decoded["colour"].values]
    assert [r["colour"] for r in rows] == local_colours and rows[3]["colour"] == NO_CATEGORY
    expected = [None if np.isnan(v) else pytest.approx(v) for v in tiny.scores(features)]
    assert [r["prediction"] for r in rows] == expected and rows[4]["prediction"] is None  # NaN is not JSON


@pytest.mark.parametrize("form", ["documented", "dict"])
def test_requests_not_in_csv_and_the_deploys_own_checks_are_left_out(tmp_path, form):
    from modelops.serving.capture import capture_record

    cfg, served = tiny.config(), tiny.served()
    libsvm = json.dumps(capture_record("e1", 0, b"0 1:2.0 2:3\n", "text/libsvm", b"1.5\n", "text/csv"))
    check = json.dumps(capture_record("e2", 0, tiny.csv_body(tiny.rows(1, 2)).encode(), "text/csv", b"1.5\n",
                                      "text/csv", inference_id="modelops-deploy-check-v3"))
    csv = tiny.capture_lines(tiny.rows(1, 1))[0][0]
    assert len(preprocess(preprocessor_script(cfg, served), [libsvm, check, csv], tmp_path, form)) == 1


# -- one capture, both ways ------------------------------------------------------------------------------------


#: Model Monitor's Simple comparison (the distance against the threshold) is documented, its Robust one is not:
#: both ways compare by the distance alone.
SIMPLE = {"drift": {"comparison_method": "simple"}}


def both_ways(features: np.ndarray, tmp_path: Path):
    """The local monitor's report and Model Monitor's (the stand-in analyzer) on the same capture records."""
    cfg = tiny.config(SIMPLE)
    served = tiny.served(cfg)
    backend = LocalBackend(tmp_path / "home")
    lines, _ = tiny.capture_lines(features)
    tiny.write_capture(backend.store, lines)
    local = check_traffic(cfg, served, read_capture(backend, cfg, served, since="all"))
    statistics, constraints = analyzer_baseline(cfg, served)
    live, violations = analyze(preprocess(preprocessor_script(cfg, served), lines, tmp_path), statistics,
                               constraints)
    return local, report_from_analyzer(cfg, served, live, violations, constraints)


def test_a_clean_replay_passes_both_ways(tmp_path):
    local, analyzed = both_ways(tiny.rows(500, 7), tmp_path)
    assert checks(local) == checks(analyzed) == set()
    assert analyzed.rows == local.rows == 500
    # The completeness each reports is the same number.
    assert {c.feature.name: c.completeness for c in analyzed.checks} == {c.feature.name: c.completeness
                                                                           for c in local.checks}


def test_a_scaled_feature_drifts_both_ways_with_the_same_distance_for_numbers(tmp_path):
    live = tiny.rows(500, 7)
    live[:, 0] *= 3
    local, analyzed = both_ways(live, tmp_path)
    expected = {("size", "baseline_drift_check"), ("prediction", "baseline_drift_check")}
    assert checks(local) == checks(analyzed) == expected
    # ks is Model Monitor's own numeric distance: the largest gap between the CDFs.
    size = {r.feature.name: r for r in local.checks}["size"]
    assert {c.feature.name: c for c in analyzed.checks}["size"].drift.distance == pytest.approx(size.drift.distance)


def test_an_unseen_category_is_a_categorical_values_violation_both_ways(tmp_path):
    live = tiny.rows(500, 7)
    live[:200, 2:5] = 0  # 40% of rows: a colour never seen in training
    local, analyzed = both_ways(live, tmp_path)
    assert ("colour", "categorical_values_check") in checks(local) & checks(analyzed)
    assert ("colour", "baseline_drift_check") in checks(local) & checks(analyzed)
    # The distances differ in kind: Jensen-Shannon locally (model.yml's default), LInfinity in Model Monitor.
    by_name = {c.feature.name: c for c in analyzed.checks}
    assert by_name["colour"].drift.test == "linf" and {c.feature.name: c for c in local.checks}[
        "colour"].drift.test == "jensen_shannon"


def test_where_the_semantics_differ_a_window_under_min_rows_is_compared_by_model_monitor_alone(tmp_path):
    live = tiny.rows(20, 7)
    live[:, 0] += 1.5  # three quarters of a standard deviation, on 20 rows
    local, analyzed = both_ways(live, tmp_path)
    # Locally, 20 rows are fewer than monitoring.drift.min_rows (30): distributions are not compared. Model
    # Monitor has no such minimum.
    assert checks(local) == set() and "fewer than monitoring.drift.min_rows" in " ".join(local.notes)
    assert ("size", "baseline_drift_check") in checks(analyzed)


def test_the_analyzer_baseline_is_both_parts_with_model_yml_thresholds_now():
    cfg = tiny.config({"drift": {"features": {"size": {"threshold": 0.3}}}})
    statistics, constraints = analyzer_baseline(cfg, tiny.served(cfg))
    assert [f["name"] for f in statistics["features"]] == ["size", "count", "colour", "prediction"]
    by_name = {f["name"]: f for f in constraints["features"]}
    assert by_name["prediction"]["completeness"] == 1.0  # over the validation rows it was computed on
    assert by_name["size"][OVERRIDES] == {"distribution_constraints": {"comparison_threshold": 0.3}}
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] == "Robust"


# -- the analyzer's files, read back ---------------------------------------------------------------------------


def test_real_shaped_violations_are_read_with_their_words():
    found = read_violations(fixture("constraint_violations.json"))
    assert [(v.feature_name, v.constraint_check_type) for v in found][:2] == [
        ("size", "baseline_drift_check"), ("count", "data_type_check")]
    assert found[2].description == "Value: 0.35 does not meet the constraint requirement!"
    [quality] = read_violations(fixture("model_quality_violations.json"))
    assert (quality.metric_name, quality.constraint_check_type) == ("r2", "LessThanThreshold")
    with pytest.raises(ValueError, match="not a constraint_violations.json"):
        read_violations({"features": []})


# -- the jobs, against botocore's service model ---------------------------------------------------------------


def drifted_analysis(tmp_path, cfg, served):
    """The live statistics.json of a drifted window (``size`` x3), as the stand-in analyzer writes it."""
    live = tiny.rows(300, 11)
    live[:, 0] *= 3
    lines, _ = tiny.capture_lines(live)
    simple = tiny.config(SIMPLE)
    statistics, constraints = analyzer_baseline(simple, tiny.served(simple))
    return analyze(preprocess(preprocessor_script(cfg, served), lines, tmp_path), statistics, constraints)[0]


def put_json(backend, uri: str, document: dict) -> None:
    backend.store.put_bytes(uri, json.dumps(document).encode(), content_type="application/json")


@pytest.mark.slow  # the SageMaker SDK's import (the analyzer image's URI) is most of it
def test_ci_monitor_on_sagemaker_is_a_one_time_model_monitor_job_whose_files_become_the_report(aws, tmp_path):
    backend = sagemaker_on_moto()
    cfg, served = tiny.config(), tiny.served()
    put_json(backend, f"{REPORTS}/statistics.json", drifted_analysis(tmp_path, cfg, served))
    put_json(backend, f"{REPORTS}/constraint_violations.json", fixture("constraint_violations.json"))
    stub = ModelMonitorStub(backend)
    stub.one_time_job(output=REPORTS)

    with stub.stub:
        checked = check_window(backend, cfg, served, since="24h", labels=None)
        stub.stub.assert_no_pending_responses()

    [definition] = stub.requests["CreateDataQualityJobDefinition"]
    assert definition["DataQualityJobInput"]["EndpointInput"]["EndpointName"] == "tiny-model"
    app = definition["DataQualityAppSpecification"]
    assert app["ImageUri"].endswith("/sagemaker-model-monitor-analyzer")
    baseline = definition["DataQualityBaselineConfig"]
    analyzed = json.loads(backend.store.get_bytes(baseline["StatisticsResource"]["S3Uri"]))
    assert [f["name"] for f in analyzed["features"]] == ["size", "count", "colour", "prediction"]
    assert "def preprocess_handler" in backend.store.get_bytes(app["RecordPreprocessorSourceUri"]).decode()
    [schedule] = stub.requests["CreateMonitoringSchedule"]
    config = schedule["MonitoringScheduleConfig"]
    assert config["ScheduleConfig"] == {"ScheduleExpression": "NOW", "DataAnalysisStartTime": "-PT1440M",
                                        "DataAnalysisEndTime": "-PT0M"}
    assert config["MonitoringJobDefinitionName"] == definition["JobDefinitionName"] == schedule[
        "MonitoringScheduleName"] and config["MonitoringType"] == "DataQuality"
    assert stub.requests["DeleteMonitoringSchedule"] == [{"MonitoringScheduleName": schedule["MonitoringScheduleName"]}]
    # Model Monitor's verdict is the report's; its counts are the window's.
    assert checked.where == JOB_ARN.rsplit("/", 1)[-1]
    report = checked.report
    assert checks(report) >= {("size", "baseline_drift_check"), ("count", "data_type_check"),
                              ("colour", "categorical_values_check"), ("prediction", "baseline_drift_check")}
    assert report.rows == checked.captured.n_rows == 300 and checked.captured.rows.shape == (0, 5)
    table = report.table()
    assert table.loc["size", "result"] == "VIOLATED: baseline_drift_check" and table.loc["size", "test"] == "ks"
    assert any("extra_column_check" in note for note in report.notes)
    # The notebook's plots draw from Model Monitor's sketches as from the captured rows.
    from modelops.notebook.plots import drift_figures

    assert set(drift_figures(report)) == {"drift_overview", "drift_size", "drift_prediction"}
    # The run's outputs are written as locally, and the record counts what Model Monitor analysed.
    monitoring = record_monitoring(backend, cfg, served, checked.captured, report, checked.quality)
    assert monitoring.record.rows == 300 and monitoring.record.violations == 5


def test_a_failed_model_monitor_job_names_its_failure_reason_and_leaves_no_schedule(aws, tmp_path):
    backend = sagemaker_on_moto()
    stub = ModelMonitorStub(backend)
    reason = "AlgorithmError: Error: Encoding mismatch: Encoding is CSV for endpointInput, but Encoding is JSON"
    stub.one_time_job(status="Failed", reason=reason, output=REPORTS)

    with stub.stub, pytest.raises(ProcessingFailed, match=r"Model Monitor's job model-monitoring-\S+ of schedule "
                                                         r"tiny-model-dq-\S+ Failed: AlgorithmError: .*CloudWatch"):
        check_window(backend, tiny.config(), tiny.served(), since="2h")
    stub.stub.assert_no_pending_responses()
    assert len(stub.requests["DeleteDataQualityJobDefinition"]) == 1


@pytest.mark.slow  # the SageMaker SDK's import (the analyzer image's URI) is most of it
def test_with_labels_model_monitors_quality_job_merges_the_ground_truth(aws, tmp_path):
    backend = sagemaker_on_moto()
    cfg, served = tiny.config(), tiny.served()
    put_json(backend, f"{REPORTS}/statistics.json", drifted_analysis(tmp_path, cfg, served))
    quality = f"{REPORTS}-quality"
    put_json(backend, f"{quality}/statistics.json", {"version": 0.0, "dataset": {"item_count": 120},
                                                      "regression_metrics": {
                                                          "rmse": {"value": 2.91, "standard_deviation": 0.03},
                                                          "r2": {"value": 0.4127, "standard_deviation": 0.0113}}})
    put_json(backend, f"{quality}/constraint_violations.json", fixture("model_quality_violations.json"))
    labels = tmp_path / "labels.csv"
    labels.write_text("event_id,label\nevent-000000,9\nevent-000010,11\n")
    stub = ModelMonitorStub(backend)
    stub.one_time_job(output=REPORTS)
    stub.one_time_job("ModelQuality", output=quality)

    with stub.stub:
        checked = check_window(backend, cfg, served, since="6h", labels=str(labels))
        stub.stub.assert_no_pending_responses()

    [definition] = stub.requests["CreateModelQualityJobDefinition"]
    assert definition["ModelQualityAppSpecification"]["ProblemType"] == "Regression"
    endpoint_input = definition["ModelQualityJobInput"]["EndpointInput"]
    assert endpoint_input["InferenceAttribute"] == "0" and endpoint_input["StartTimeOffset"] == "-PT360M"
    truth = definition["ModelQualityJobInput"]["GroundTruthS3Input"]["S3Uri"]
    [uploaded] = backend.store.list_objects(truth)
    first = json.loads(backend.store.get_bytes(uploaded.uri).decode().splitlines()[0])
    assert first == {"groundTruthData": {"data": "9", "encoding": "CSV"}, "eventMetadata": {"eventId": "event-000000"},
                     "eventVersion": "0"}
    gates_uri = definition["ModelQualityBaselineConfig"]["ConstraintsResource"]["S3Uri"]
    gates = json.loads(backend.store.get_bytes(gates_uri))
    assert gates["regression_constraints"]["r2"] == {"threshold": 0.5, "comparison_operator": "LessThanThreshold"}
    assert checked.quality.metrics == {"rmse": 2.91, "r2": 0.4127}
    assert [(v.metric_name, v.constraint_check_type) for v in checked.quality.violations] == [
        ("r2", "LessThanThreshold")]
    assert "model-quality job" in checked.quality.statement()


def test_a_schedule_is_created_once_then_pointed_at_the_new_baseline(aws):
    backend = sagemaker_on_moto()
    cfg, served = tiny.config(), tiny.served()
    stub = ModelMonitorStub(backend)
    stub.schedule(exists=False, name="tiny-model-data-quality")
    stub.schedule(exists=True, name="tiny-model-data-quality")

    with stub.stub:
        assert backend.model_monitor.schedule(cfg, served, "hourly", log=lambda line: None) == "tiny-model-data-quality"
        backend.model_monitor.schedule(cfg, served, "daily", log=lambda line: None)
        stub.stub.assert_no_pending_responses()

    [created] = stub.requests["CreateMonitoringSchedule"]
    assert created["MonitoringScheduleConfig"]["ScheduleConfig"] == {
        "ScheduleExpression": SCHEDULES["hourly"], "DataAnalysisStartTime": "-PT1H", "DataAnalysisEndTime": "-PT0H"}
    [updated] = stub.requests["UpdateMonitoringSchedule"]
    assert updated["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == "cron(0 0 ? * * *)"
    second = stub.requests["CreateDataQualityJobDefinition"][1]["JobDefinitionName"]
    assert updated["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == second
    with pytest.raises(ConfigError, match="hourly"):
        backend.model_monitor.schedule(cfg, served, "weekly")


def test_a_window_model_monitor_cannot_analyse_at_once_is_refused_before_any_job():
    day = Window(NOW - timedelta(hours=24), NOW)
    assert window_offsets(day, NOW) == ("-PT1440M", "-PT0M")
    assert window_offsets(Window(NOW - timedelta(hours=3), NOW - timedelta(hours=1)), NOW) == ("-PT180M", "-PT60M")
    with pytest.raises(ConfigError, match="longer than the 24 hours.*--engine notebook"):
        window_offsets(Window(NOW - timedelta(days=7), NOW), NOW)


def test_the_local_backend_checks_in_the_kernel_and_has_no_model_monitor(tmp_path):
    backend = LocalBackend(tmp_path / "home")
    cfg, served = tiny.config(), tiny.served()
    lines, _ = tiny.capture_lines(tiny.rows(60, 3))
    tiny.write_capture(backend.store, lines)
    checked = check_window(backend, cfg, served, since="all")
    assert checked.where == "this kernel" and checked.report.rows == 60
    with pytest.raises(ConfigError, match="no SageMaker Model Monitor"):
        check_window(backend, cfg, served, engine="model-monitor")


def test_ci_monitor_schedule_on_the_local_backend_says_where_schedules_live(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from ci.cli import main

    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["monitor", "abalone_model", "--schedule", "daily", "--backend", "local"])
    assert result.exit_code == 2
    assert "SageMaker Model Monitor schedule" in result.output and "--backend sagemaker" in result.output
