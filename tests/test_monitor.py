"""The monitor on a small synthetic model: capture files in a local store read back, checked against a baseline.

The same reader runs on S3 in tests/test_monitor_e2e.py; here each test changes one thing in an otherwise clean
replay and checks the violations it gives, in Model Monitor's format.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from modelops.backends.local import LocalBackend
from modelops.config import ServingConfig
from modelops.errors import ConfigError, ConstraintViolated, DataError
from modelops.monitoring.monitor import (
    answer_scores,
    check_traffic,
    live_quality,
    monitoring_window,
    read_capture,
    read_labels,
    record_monitoring,
)
from modelops.records import MonitorRecord
from tests.support import monitoring as tiny


@pytest.fixture
def backend(tmp_path):
    return LocalBackend(tmp_path / "home")


def replay(backend, features, *, cfg=None, answers=None, since="all", served=None):
    """Capture ``features`` (as the endpoint would), read them back and check them: (captured, report)."""
    cfg = cfg or tiny.config()
    served = served or tiny.served(cfg)
    lines, _ = tiny.capture_lines(features, answers=answers)
    tiny.write_capture(backend.store, lines)
    captured = read_capture(backend, cfg, served, since=since)
    return captured, check_traffic(cfg, served, captured)


def checks(report) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in report.violations}


def test_a_clean_replay_violates_nothing(backend):
    captured, report = replay(backend, tiny.rows(500, 7))
    assert (captured.records, captured.n_rows, captured.skipped) == (50, 500, ())
    assert report.violations == () and report.drifted == []
    assert "No constraint violated: 500 live rows" in report.statement()
    table = report.table()
    assert list(table.index) == ["size", "count", "colour", "prediction"]
    assert set(table["result"]) == {"ok"}
    assert table.loc["colour", "test"] == "jensen_shannon" and table.loc["size", "test"] == "ks"


def test_a_feature_scaled_three_times_drifts_and_moves_the_predictions(backend):
    live = tiny.rows(500, 7)
    live[:, 0] *= 3
    _, report = replay(backend, live)
    assert checks(report) == {("size", "baseline_drift_check"), ("prediction", "baseline_drift_check")}
    [size] = [c for c in report.checks if c.feature.name == "size"]
    assert size.drift.distance > 0.9 and size.drift.p_value < 1e-10
    violation = next(v for v in report.violations if v.feature_name == "size").to_json()
    assert set(violation) == {"feature_name", "constraint_check_type", "description"}
    assert "Kolmogorov-Smirnov distance" in violation["description"]


def test_a_category_never_seen_in_training_is_a_categorical_values_violation_and_drift(backend):
    live = tiny.rows(500, 7)
    live[:250, 2:5] = 0  # "purple": sent as none of the one-hot columns (encode_rows(..., unseen="zeros"))
    _, report = replay(backend, live)
    assert ("colour", "categorical_values_check") in checks(report)
    assert ("colour", "baseline_drift_check") in checks(report)
    assert not any(v.feature_name in ("size", "count") for v in report.violations)
    [description] = [v.description for v in report.violations if v.constraint_check_type == "categorical_values_check"]
    assert description.startswith("50.0% of rows hold none of the 3 training categories")


def test_rows_narrower_than_the_model_are_a_missing_column_violation(backend):
    full = tiny.rows(200, 7)
    live = full[:, :4]  # the last one-hot column dropped by a client
    captured, report = replay(backend, live, answers=tiny.scores(full))
    assert captured.narrow_rows == {4: 200}
    assert ("colour=red", "missing_column_check") in checks(report)
    assert "200 rows had 4 columns where the model has 5" in report.violations[0].description


def test_missing_values_fractional_counts_and_new_signs_are_violations(backend):
    live = tiny.rows(500, 7)
    live[:100, 0] = np.nan  # size: 80% complete, 100% in training
    live[:, 1] += 0.5  # count: fractional where training was integral
    live[:5, 2:5] = 1  # colour: several one-hot columns set
    _, report = replay(backend, live)
    found = checks(report)
    assert ("size", "completeness_check") in found
    assert ("count", "data_type_check") in found
    assert ("colour", "data_type_check") not in found  # 1% of rows: under datatype_check_threshold (10%)
    live[:, 1] = -live[:, 1]
    _, report = replay(backend, live, since="all")
    assert any(v.feature_name == "count" and "never negative in training" in v.description for v in report.violations)


def test_shifted_predictions_alone_violate_only_the_prediction_drift_check(backend):
    live = tiny.rows(500, 7)
    _, report = replay(backend, live, answers=tiny.scores(live) + 3.0)
    assert checks(report) == {("prediction", "baseline_drift_check")}


def test_model_yml_thresholds_apply_without_retraining(backend):
    live = tiny.rows(500, 7)
    live[:, 0] *= 1.15  # a moderate shift: KS ~0.25
    cfg = tiny.config({"drift": {"features": {"size": {"threshold": 0.5}, "prediction": {"ignore": True}}}})
    _, report = replay(backend, live, cfg=cfg, served=tiny.served(tiny.config()))
    assert report.violations == ()
    assert report.table().loc["prediction", "result"].startswith("ignored")
    _, report = replay(backend, live, since="all")
    assert ("size", "baseline_drift_check") in checks(report)


def test_a_small_window_is_not_called_drift_on_noise(backend):
    live = tiny.rows(12, 7)
    live[:, 0] *= 3
    cfg = tiny.config({"drift": {"min_rows": 30}})
    _, report = replay(backend, live, cfg=cfg)
    assert report.violations == ()
    assert any("only 12 live rows" in note for note in report.notes)
    assert report.table().loc["size", "result"] == "too few rows to compare"


def test_robust_comparison_needs_significance_simple_does_not(backend):
    live = tiny.rows(40, 9)
    cfg = tiny.config({"drift": {"comparison_method": "simple", "numeric_threshold": 0.05, "min_rows": 10}})
    _, simple = replay(backend, live, cfg=cfg)
    cfg = tiny.config({"drift": {"comparison_method": "robust", "numeric_threshold": 0.05, "min_rows": 10}})
    _, robust = replay(backend, live, cfg=cfg, since="all")
    assert ("size", "baseline_drift_check") in checks(simple)
    assert robust.violations == ()
    assert "not significant" in robust.table().loc["size", "result"]


def test_malformed_and_truncated_capture_files_are_reported_and_skipped(backend):
    cfg, served = tiny.config(), tiny.served()
    good, _ = tiny.capture_lines(tiny.rows(100, 7))
    tiny.write_capture(backend.store, good, name="00-00-000-good.jsonl")
    more, _ = tiny.capture_lines(tiny.rows(40, 8))
    broken = more[:3] + ["{not json", json.dumps({"eventMetadata": {}}), more[3][:40]]
    tiny.write_capture(backend.store, broken[:-1], name="00-00-001-broken.jsonl")
    path = backend.store.local_path(tiny.write_capture(backend.store, [broken[-1]], name="00-00-002-cut.jsonl"))
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # the writer was killed mid-record
    tiny.write_capture(backend.store, ["\x00\xff binary"], name="00-00-003-binary.jsonl")
    base64 = json.loads(good[0])
    base64["captureData"]["endpointInput"].update(encoding="BASE64", data="not base64!")
    tiny.write_capture(backend.store, [json.dumps(base64)], name="00-00-004-base64.jsonl")
    captured = read_capture(backend, cfg, served, since="all")
    assert captured.n_rows == 130 and captured.records == 13
    reasons = {(s.uri.rsplit("/", 1)[1], s.line): s.reason for s in captured.skipped}
    assert reasons[("00-00-001-broken.jsonl", 4)].startswith("not a capture record: JSONDecodeError")
    assert reasons[("00-00-001-broken.jsonl", 5)].startswith("not a capture record: KeyError")
    assert reasons[("00-00-002-cut.jsonl", 1)].startswith("truncated: the file ends in the middle of a record")
    assert reasons[("00-00-003-binary.jsonl", 1)].startswith("not a capture record")
    assert reasons[("00-00-004-base64.jsonl", 1)] == "endpointInput.data is not valid base64"
    assert list(captured.skipped_table().columns) == ["file", "line", "reason"]
    assert check_traffic(cfg, served, captured).violations == ()


def test_an_unreadable_capture_object_is_skipped(backend, monkeypatch):
    cfg, served = tiny.config(), tiny.served()
    lines, _ = tiny.capture_lines(tiny.rows(20, 7))
    bad = tiny.write_capture(backend.store, lines, name="00-00-000-a.jsonl")
    tiny.write_capture(backend.store, lines, name="00-00-001-b.jsonl")
    original = backend.store.get_bytes

    def get_bytes(uri):
        if uri == bad:
            from modelops.errors import StoreError

            raise StoreError(f"could not read {uri}: permission denied.")
        return original(uri)

    monkeypatch.setattr(backend.store, "get_bytes", get_bytes)
    captured = read_capture(backend, cfg, served, since="all")
    assert captured.n_rows == 20
    assert captured.skipped[0].line is None and "permission denied" in captured.skipped[0].reason


def test_only_the_window_is_read(backend):
    cfg, served = tiny.config(), tiny.served()
    now = time.time()
    old, _ = tiny.capture_lines(tiny.rows(30, 5) * 3, at=now - 3 * 3600)
    new, _ = tiny.capture_lines(tiny.rows(60, 6), at=now - 60)
    tiny.write_capture(backend.store, old, at=now - 3 * 3600)
    tiny.write_capture(backend.store, new, at=now - 60)
    captured = read_capture(backend, cfg, served, since="1h")
    assert captured.n_rows == 60 and captured.files == 1
    assert read_capture(backend, cfg, served, since="4h").n_rows == 90


def test_nothing_captured_with_capture_off_says_how_to_turn_it_on(backend):
    cfg = tiny.config({"data_capture": {"enabled": False}})
    with pytest.raises(ConfigError, match=r"data capture is off for tiny-model\. Fix: set "
                                          r"monitoring\.data_capture\.enabled: true"):
        read_capture(backend, cfg, tiny.served(cfg))
    captured = read_capture(backend, tiny.config(), tiny.served())
    report = check_traffic(tiny.config(), tiny.served(), captured)
    assert captured.n_rows == 0 and report.violations == ()
    assert report.statement().startswith("Nothing was captured from tiny-model in the window")


def test_the_monitoring_window_reads_durations_times_and_all():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert monitoring_window("24h", now=now).since == now - timedelta(hours=24)
    assert monitoring_window("30m", now=now).since == now - timedelta(minutes=30)
    window = monitoring_window("2026-02-27", "2026-02-28T06:00+01:00", now=now)
    assert window.since == datetime(2026, 2, 27, tzinfo=UTC)
    assert window.until == datetime(2026, 2, 28, 5, tzinfo=UTC)
    assert monitoring_window("all", now=now).since.year == 1970
    with pytest.raises(ConfigError, match=r"--since 'yesterday' is neither a duration nor a time\. Fix:"):
        monitoring_window("yesterday", now=now)
    with pytest.raises(ConfigError, match=r"starts at .* not before its end"):
        monitoring_window("2026-03-02", now=now)


def test_labels_give_live_metrics_against_the_gates(backend, tmp_path):
    cfg, served = tiny.config(), tiny.served()
    features = tiny.rows(200, 7)
    lines, ids = tiny.capture_lines(features, batch=1)
    tiny.write_capture(backend.store, lines)
    captured = read_capture(backend, cfg, served, since="all")
    truth = tiny.scores(features)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"groundTruthData": {"data": repr(float(t)), "encoding": "CSV"},
                                          "eventMetadata": {"eventId": e}, "eventVersion": "0"}) + "\n"
                              for e, t in zip(ids, truth)) + json.dumps(
        {"groundTruthData": {"data": "1"}, "eventMetadata": {"eventId": "nobody"}}) + "\n")
    quality = live_quality(cfg, captured, labels)
    assert quality.labelled_rows == 200 and quality.unmatched_labels == 1
    assert quality.metrics["rmse"] == pytest.approx(0, abs=1e-9) and quality.violations == ()
    assert "Live metrics on 200 labelled rows: All 2 quality gates passed" in quality.statement()
    # Wrong labels fail the gates as Model Monitor's model-quality violations.
    worse = tmp_path / "worse.csv"
    worse.write_text("event_id,label\n" + "".join(f"{e},{float(t) + 5}\n" for e, t in zip(ids, truth)))
    quality = live_quality(cfg, captured, worse)
    by_metric = {v.metric_name: v.to_json() for v in quality.violations}
    assert by_metric["rmse"]["constraint_check_type"] == "GreaterThanThreshold"
    assert by_metric["r2"]["constraint_check_type"] == "LessThanThreshold"
    assert set(by_metric["rmse"]) == {"metric_name", "constraint_check_type", "description"}
    assert by_metric["rmse"]["description"].startswith("Metric rmse with 5 was GreaterThanThreshold '2.3'")


def test_without_labels_the_report_says_it_sees_drift_not_accuracy(backend):
    quality = live_quality(tiny.config(), read_capture(backend, tiny.config(), tiny.served()), None)
    assert "detects input drift" in quality.statement() and "not accuracy decay" in quality.statement()
    assert quality.table() is None


def test_labels_files_that_cannot_be_read_are_refused_naming_the_line(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("id,value\n1,2\n")
    with pytest.raises(DataError, match=r"neither ground-truth JSON lines nor a CSV header with event_id and label"):
        read_labels(bad)
    bad.write_text('{"groundTruthData": {}}\n')
    with pytest.raises(DataError, match=r"labels\.csv:1 is not a ground-truth record"):
        read_labels(bad)
    with pytest.raises(DataError, match=r"cannot read the labels file"):
        read_labels(tmp_path / "missing.csv")


def test_answers_in_every_format_the_container_writes():
    binary = tiny.config(problem_type="binary", data={**_abalone_data(), "positive_label": "M"},
                         quality={"auc": {"min": 0.5}},
                         training={"container_version": "3.2-0",
                                   "hyperparameters": {"objective": "binary:logistic", "num_round": 5}})
    assert answer_scores(binary, b"0.25\n0.75\n", "text/csv; charset=utf-8").tolist() == [[0.25], [0.75]]
    assert answer_scores(binary, b'{"predictions": [{"score": 0.25}]}', "application/json").tolist() == [[0.25]]
    selected = replace(binary, serving=ServingConfig(("predicted_label", "probability")))
    assert answer_scores(selected, b"0,0.25\n1,0.75", "text/csv").tolist() == [[0.25], [0.75]]
    assert answer_scores(selected, b'{"predicted_label": 1, "probability": 0.9}\n',
                         "application/jsonlines").tolist() == [[0.9]]
    with pytest.raises(ValueError, match="application/x-recordio-protobuf are not read"):
        answer_scores(selected, b"\x00", "application/x-recordio-protobuf")
    labels_only = replace(binary, serving=ServingConfig(("predicted_label",)))
    with pytest.raises(ValueError, match="hold no score"):
        answer_scores(labels_only, b"1\n", "text/csv")


def test_the_run_writes_model_monitor_files_and_fails_on_a_violation(backend):
    cfg, served = tiny.config(), tiny.served()
    live = tiny.rows(300, 7)
    live[:, 0] *= 3
    captured, report = replay(backend, live, served=served)
    monitoring = record_monitoring(backend, cfg, served, captured, report, live_quality(cfg, captured, None))
    violations = json.loads(backend.store.get_bytes(monitoring.uris["constraint_violations"]))
    assert {v["feature_name"] for v in violations["violations"]} == {"size", "prediction"}
    statistics = json.loads(backend.store.get_bytes(monitoring.uris["statistics"]))
    assert statistics["dataset"]["item_count"] == 300
    assert [f["name"] for f in statistics["features"]] == ["size", "count", "colour"]
    record = monitoring.record
    assert (record.rows, record.violations, record.drifted_features) == (300, 2, ("size", "prediction"))
    assert record.violation_checks == {"baseline_drift_check": 2}
    assert MonitorRecord.from_scraps(json.loads(json.dumps(record.to_scraps()))) == record
    with pytest.raises(ConstraintViolated, match=r"tiny-model broke 2 monitoring constraint\(s\): size: "
                                                 r"baseline_drift_check; prediction: baseline_drift_check\. "
                                                 r"Evidence: .*constraint_violations\.json") as raised:
        monitoring.raise_if_violated()
    assert raised.value.exit_code == 7


def _abalone_data() -> dict:
    import yaml

    from tests.support.paths import ROOT

    return yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())["data"]


def test_the_deploys_own_checks_are_not_clients_traffic(backend):
    from modelops.release.deploy import CHECK_INFERENCE_ID

    cfg, served = tiny.config(), tiny.served()
    replayed = tiny.rows(100, 7)[np.arange(1000) % 100]  # the test split, replayed over and over
    lines, _ = tiny.capture_lines(replayed * 3)
    marked = [json.loads(line) for line in lines]
    for record in marked:
        record["eventMetadata"]["inferenceId"] = f"{CHECK_INFERENCE_ID}v1"
    client, _ = tiny.capture_lines(tiny.rows(200, 8))
    tiny.write_capture(backend.store, [json.dumps(r) for r in marked] + client)
    captured = read_capture(backend, cfg, served, since="all")
    assert captured.n_rows == 200 and any("the deploy's own checks" in note for note in captured.notes)
    assert check_traffic(cfg, served, captured).violations == ()
