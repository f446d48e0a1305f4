"""The monitor end to end: real models, real endpoints capturing their traffic, replays of the test split.

Local: each model is trained, baselined, registered and deployed (capture on, as its model.yml says) on a local
endpoint; the test split is replayed as a client would send it, then again with one feature scaled x3 and with
a category never seen in training (sent as none of its one-hot columns, as ``encode_rows(..., unseen="zeros")``
does), each in its own window. SageMaker: the same on moto, where a stand-in for SageMaker hosting answers
InvokeEndpoint and writes the capture records SageMaker's data capture would, to S3, per the endpoint config's
DataCaptureConfig; the monitor reads them through the S3 store, with the code that reads local files.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from click.testing import CliRunner

import modelops
from modelops.backends.local import LocalBackend
from modelops.data.prepare import features_and_target
from modelops.monitoring.monitor import check_traffic, live_quality, read_capture, record_monitoring, served_model
from modelops.serving.protocol import to_csv
from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

#: Per model: the feature scaled x3 and the one-hot group sent a category never seen in training.
DRIFT = {"abalone_model": ("shell_weight", "sex"), "churn_model": ("CustServ Calls", "State")}


def trained(ops, model: str):
    """Gather, train, baseline, register and approve ``model`` in-process: (config, package, test X, test y)."""
    config = modelops.load_model_config(ROOT / model)
    raw = modelops.fetch_data(config)
    prepared = modelops.prepare_data(modelops.read_raw(raw.path, config.data), config)
    dataset = modelops.write_dataset(ops.store, config, raw, modelops.split_frame(prepared.frame, config.split),
                                     prepared=prepared)
    training = modelops.train_model(ops, config, dataset, log=lambda *a: None)
    evaluation = modelops.evaluate_model(ops, config, dataset, training)
    baseline = modelops.write_baseline(ops, config, dataset, training)
    package = modelops.register_model(ops, config, dataset, training, evaluation,
                                      modelops.check_quality(config, evaluation.metrics), baseline=baseline)
    package = ops.registry.approve(config.name, package.version, by="test")
    X, y = features_and_target(modelops.read_split(ops.store, dataset, "test"))
    return config, package, X, y, dataset.feature_encoding


def promoted(ops, config, package, **settings) -> None:
    """Serve ``package`` in production as the pipeline does: staging, the promotion gate, then production."""
    modelops.deploy_package(ops, config, package, log=lambda line: None, **settings)
    modelops.check_gate(modelops.run_gate(ops, config, by="test", log=lambda line: None))
    modelops.deploy_package(ops, config, package, env_name="production", log=lambda line: None, **settings)


def send(ops, config, X, batch: int = 7) -> int:
    """Send rows as a client would (a few rows a request); returns the requests sent."""
    requests = 0
    for start in range(0, len(X), batch):
        ops.endpoints.invoke(config.name, to_csv(X[start:start + batch]))
        requests += 1
    return requests


def window(ops, config, expected: int, started: float) -> tuple[str, str]:
    """Wait until the endpoint wrote ``expected`` records; the window (since, until) of what was sent."""
    deadline = time.monotonic() + 30
    while ops.endpoints.status(config.name).detail["capture"]["captured"] < expected:
        assert time.monotonic() < deadline, ops.endpoints.status(config.name).detail["capture"]
        time.sleep(0.05)
    time.sleep(1.05)  # inferenceTime has seconds: the next window starts in a later second
    return iso(started), iso(time.time())


def iso(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unseen(X: np.ndarray, encoding, column: str) -> np.ndarray:
    """Every row's ``column`` a category the model never saw: none of its one-hot columns set."""
    position = len(encoding.numeric)
    for name, values in encoding.categorical:
        if name == column:
            changed = X.copy()
            changed[:, position:position + len(values)] = 0
            return changed
        position += len(values)
    raise AssertionError(column)


def scaled(X: np.ndarray, encoding, feature: str) -> np.ndarray:
    changed = X.copy()
    changed[:, list(encoding.feature_names).index(feature)] *= 3
    return changed


def violations(report) -> set[tuple[str, str]]:
    return {(v.feature_name, v.constraint_check_type) for v in report.violations}


@pytest.mark.parametrize("model", sorted(DRIFT))
def test_replays_of_the_test_split_through_a_local_endpoint(home, tmp_path, model):
    ops = LocalBackend(home)
    config, package, X, y, encoding = trained(ops, model)
    promoted(ops, config, package)
    total = 0
    # The deploy's own checks (the test split, then the same rows thousands of times) are captured, marked.
    modelops.verify_endpoint(ops, config, package, env_name="production")
    modelops.measure_latency(ops, config, package, calls=20, batch_rows=3000, env_name="production")
    total += 22
    served = served_model(ops, config)
    feature, group = DRIFT[model]
    outcomes = {}
    for name, rows in (("clean", X), ("scaled", scaled(X, encoding, feature)), ("unseen", unseen(X, encoding, group))):
        started = time.time()
        total += send(ops, config, rows)
        since, until = window(ops, config, total, started)
        captured = read_capture(ops, config, served, since=since, until=until)
        assert (captured.n_rows, captured.skipped) == (len(X), ())
        outcomes[name] = (captured, check_traffic(config, served, captured))
    clean_captured, clean = outcomes["clean"]
    assert clean.violations == (), clean.table().to_string()
    assert violations(outcomes["scaled"][1]) >= {(feature, "baseline_drift_check"),
                                                 ("prediction", "baseline_drift_check")}
    assert {v.feature_name for v in outcomes["scaled"][1].violations} <= {feature, "prediction"}
    assert violations(outcomes["unseen"][1]) >= {(group, "categorical_values_check"), (group, "baseline_drift_check")}
    assert not any(v.feature_name in encoding.feature_names for v in outcomes["unseen"][1].violations)
    # Ground truth for the clean window: the live metrics pass the gates.
    labels = tmp_path / "labels.csv"
    events = dict.fromkeys(clean_captured.event_ids)
    truth = {e: ",".join(repr(float(v)) for v in y[i * 7:(i + 1) * 7]) for i, e in enumerate(events)}
    labels.write_text("event_id,label\n" + "".join(f'{e},"{t}"\n' for e, t in truth.items()))
    quality = live_quality(config, clean_captured, labels)
    assert quality.labelled_rows == len(X) and quality.violations == (), quality.statement()
    gated = config.quality[0].metric
    assert quality.metrics[gated] == pytest.approx(package.metrics[gated], rel=1e-6)
    monitoring = record_monitoring(ops, config, served, *outcomes["unseen"], quality)
    assert monitoring.record.violations == len(outcomes["unseen"][1].violations)


@pytest.mark.notebook
def test_ci_monitor_runs_the_notebook_and_exits_7_on_a_violation(home, tmp_path):
    from ci.cli import main

    ops = LocalBackend(home)
    config, package, X, _, encoding = trained(ops, "abalone_model")
    promoted(ops, config, package)
    started = time.time()
    sent = send(ops, config, X)
    clean_window = window(ops, config, sent, started)
    started = time.time()
    sent += send(ops, config, scaled(X, encoding, "shell_weight"))
    drifted_window = window(ops, config, sent, started)
    artifacts = tmp_path / "artifacts"
    runner = CliRunner()
    clean = runner.invoke(main, ["monitor", str(ROOT / "abalone_model"), "--since", clean_window[0], "--until",
                                 clean_window[1], "--artifacts", str(artifacts)])
    assert clean.exit_code == 0, clean.output
    assert "abalone-model v1: 418 rows in 60 records" in clean.output and "0 violation(s)" in clean.output
    drifted = runner.invoke(main, ["monitor", str(ROOT / "abalone_model"), "--since", drifted_window[0],
                                   "--artifacts", str(artifacts)])
    assert drifted.exit_code == 7, drifted.output
    assert "drifting: shell_weight, prediction" in drifted.output
    assert "ConstraintViolated: abalone-model broke" in drifted.output
    executed = (artifacts / "abalone_model" / "monitor.html").read_text()
    assert "constraint_violations.json" in executed and "baseline_drift_check" in executed
    figures = {p.name for p in (artifacts / "abalone_model" / "figures").iterdir()}
    assert {"monitor-drift_overview.png", "monitor-drift_shell_weight.png", "monitor-drift_prediction.png"} <= figures
    [violations_uri] = [line.rsplit(" ", 1)[1] for line in drifted.output.splitlines() if "violation(s)" in line]
    assert {v["feature_name"] for v in json.loads(ops.store.get_bytes(violations_uri))["violations"]} == {
        "shell_weight", "prediction"}


def test_sagemaker_data_capture_on_s3_is_read_by_the_same_code(aws, home):
    from tests.support.aws import sagemaker_on_moto

    ops = sagemaker_on_moto()
    CapturingHosting(ops.endpoints)
    config, package, X, _, encoding = trained_on_s3(ops)
    promoted(ops, config, package, timeout=5)
    served = served_model(ops, config)
    assert served.package.version == package.version and served.baseline.uris == package.baselines
    started = time.time()
    requests = send(ops, config, X)
    time.sleep(1.05)
    clean = read_capture(ops, config, served, since=iso(started))
    assert clean.n_rows == len(X) and clean.files == requests and clean.destination.startswith("s3://")
    assert check_traffic(config, served, clean).violations == ()
    started = time.time()
    send(ops, config, unseen(X, encoding, "sex"))
    report = check_traffic(config, served, read_capture(ops, config, served, since=iso(started)))
    assert violations(report) >= {("sex", "categorical_values_check"), ("sex", "baseline_drift_check")}


def trained_on_s3(ops):
    """abalone trained in-process, its artifact, dataset and baseline in (moto's) S3, registered and approved."""
    from modelops.entities import TrainingResult
    from modelops.training.train import fit, pack_model

    config = modelops.load_model_config(ROOT / "abalone_model")
    raw = modelops.fetch_data(config)
    prepared = modelops.prepare_data(modelops.read_raw(raw.path, config.data), config)
    dataset = modelops.write_dataset(ops.store, config, raw, modelops.split_frame(prepared.frame, config.split),
                                     prepared=prepared)
    train = features_and_target(modelops.read_split(ops.store, dataset, "train"))
    validation = features_and_target(modelops.read_split(ops.store, dataset, "validation"))
    booster = fit(*train, *validation, config.hyperparameters).booster
    job = "abalone-model-20260101-000000-beef"
    artifact = ops.store.put_bytes(ops.store.uri(config.name, "training", job, "output", "model.tar.gz"),
                                   pack_model(booster))
    training = TrainingResult(job_name=job, artifact_uri=artifact.uri, artifact_sha256=artifact.sha256,
                              image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                              container_version="3.2-0", xgboost_version="3.2", hyperparameters={}, eval_metric="rmse",
                              curves={}, rounds=1, best_iteration=None, duration_seconds=0.1)
    evaluation = modelops.evaluate_model(ops, config, dataset, training)
    baseline = modelops.write_baseline(ops, config, dataset, training)
    package = modelops.register_model(ops, config, dataset, training, evaluation,
                                      modelops.check_quality(config, evaluation.metrics), baseline=baseline)
    X, y = features_and_target(modelops.read_split(ops.store, dataset, "test"))
    return config, ops.registry.approve(config.name, package.version, by="test"), X, y, dataset.feature_encoding


class CapturingHosting:
    """tests/support/hosting.py's stand-in for SageMaker hosting, plus what SageMaker's data capture does.

    After an answered InvokeEndpoint, when the endpoint's config has a DataCaptureConfig, it writes the capture
    record to ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-ms>-<uuid>.jsonl`` with a plain
    PutObject (no sha256 metadata: SageMaker's objects have none), one object per request.
    """

    def __init__(self, endpoints):
        from tests.support.hosting import SageMakerHosting

        self.hosting = SageMakerHosting(endpoints)
        endpoints.runtime.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", self._capture)

    def _capture(self, http_response, parsed, model, context, **kwargs):
        import io
        import uuid

        from botocore.response import StreamingBody

        from modelops.serving.capture import capture_record, file_name, hour_folder

        request = context["contract_params"]
        if parsed.get("ResponseMetadata", {}).get("HTTPStatusCode") != 200:
            return
        control = self.hosting.control
        endpoint = control.describe_endpoint(EndpointName=request["EndpointName"])
        capture = control.describe_endpoint_config(
            EndpointConfigName=endpoint["EndpointConfigName"]).get("DataCaptureConfig") or {}
        if not capture.get("EnableCapture"):
            return
        body = parsed["Body"].read()
        parsed["Body"] = StreamingBody(io.BytesIO(body), len(body))
        at = time.time()
        record = capture_record(str(uuid.uuid4()), at, request["Body"], request.get("ContentType"), body,
                                parsed.get("ContentType"), inference_id=request.get("InferenceId"))
        bucket, _, prefix = capture["DestinationS3Uri"][len("s3://"):].partition("/")
        key = f"{prefix}/{hour_folder(request['EndpointName'], at)}/{file_name(at)}"
        self.hosting.s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(record) + "\n").encode())
