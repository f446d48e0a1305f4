"""The promotion gate and the promotion: the verdict from the figures, and the whole flow on SageMaker (moto).

Locally, the gate runs through real notebooks and servers in tests/test_model_notebooks.py (both models promoted,
and a failed gate leaving production untouched). Here the SageMaker side: staging, the gate through the
SageMaker Runtime API (moto, with the hosting stand-in of tests/support/hosting.py answering as the
XGBoost container does), production refused before the gate and after a failed one, the promotion of the same
package by id, the event log in S3 with its tags, and the answer to "what served when".
"""

from __future__ import annotations

import dataclasses
import os
import time

import boto3
import pytest

from modelops.config import PRODUCTION, SLO, STAGING, load_model_config
from modelops.data.datasets import Dataset
from modelops.entities import APPROVED, IN_SERVICE, EndpointLimits, Lineage, PackageVersion, TrainingResult
from modelops.errors import PromotionGateFailed, PromotionRefused, StoreError
from modelops.release.gate import GateResult, check_gate
from tests.support.paths import ROOT, SHARED_DATA

CONFIG = load_model_config(ROOT / "abalone_model")
PACKAGE = PackageVersion(group="abalone-model", version=3, status=APPROVED, package_id="local:abalone-model/3",
                         artifact_uri="file:///m.tar.gz", artifact_sha256="ab" * 32, image="i",
                         container_version="3.2-0", xgboost_version="3.2", hyperparameters={}, metrics={},
                         data_sha256="d" * 64, dataset_id="d",
                         lineage=Lineage(), created_at="2026-12-01T10:00:00")


def gate(**changes) -> GateResult:
    values = dict(model="abalone-model", endpoint="abalone-model-staging", package=PACKAGE,
                  slo=SLO(p50_ms=100, p99_ms=500, error_rate=0.0), rows=418, identical=418,
                  latencies_ms=tuple([2.0] * 410 + [9.0] * 8), errors=(), error_count=0, max_abs_difference=0.0,
                  production_version=2)
    return GateResult(**{**values, **changes})


def test_a_gate_passes_when_every_answer_is_identical_and_latency_and_errors_meet_the_slo():
    passed = gate()
    assert passed.passed and passed.failures == [] and (passed.p50_ms, passed.p99_ms) == (2.0, 9.0)
    assert passed.summary() == "418/418 rows identical, p50 2.00 ms, p99 9.00 ms, 0 errors"
    assert passed.table()["passed"].tolist() == [True] * 4
    record = passed.record
    assert (record.gate_passed, record.staging_version, record.production_version) == (True, 3, 2)
    check_gate(passed)  # no error


@pytest.mark.parametrize("changes, failure", [
    ({"identical": 417, "max_abs_difference": 0.25},
     "1 of 418 answers differ from the artifact's offline predictions (max |difference| 0.25)"),
    ({"error_count": 2, "errors": ("endpoint 'abalone-model-staging' answered 500: boom",),
      "latencies_ms": tuple([2.0] * 416), "identical": 416},
     "error rate 0.48% (2 of 418 requests) above the SLO's 0.00%: endpoint 'abalone-model-staging' answered 500"),
    ({"latencies_ms": tuple([2.0] * 400 + [800.0] * 18)}, "p99 latency 800.0 ms above the SLO's 500 ms"),
    ({"latencies_ms": tuple([150.0] * 418)}, "p50 latency 150.0 ms above the SLO's 100 ms"),
    ({"rows": 0, "identical": 0, "latencies_ms": ()}, "no test rows to replay"),
])
def test_a_gate_fails_naming_what_failed_and_says_production_is_untouched(changes, failure):
    failed = gate(**changes)
    assert not failed.passed and any(failure in line for line in failed.failures)
    with pytest.raises(PromotionGateFailed, match=r"abalone-model: the promotion gate failed for abalone-model v3 on "
                                                  r"abalone-model-staging: .*Production is untouched \(it serves "
                                                  r"v2\)\. Fix: ") as raised:
        check_gate(failed)
    assert failure in str(raised.value) and raised.value.exit_code == 9
    assert failed.record.gate_failures == tuple(failed.failures) and not failed.record.gate_passed


def test_latency_without_an_slo_is_measured_not_gated():
    relaxed = gate(slo=SLO(), latencies_ms=tuple([5000.0] * 418))
    assert relaxed.passed and relaxed.table().loc["p99 latency", "required"] == "not gated"


def test_the_error_rate_counts_failed_batch_rows_and_failed_single_requests_over_every_answer():
    failed = gate(error_count=12, requests_failed=2, identical=408, latency_requests=100,
                  errors=("batch 3 (rows 200-209): endpoint 'abalone-model-staging' answered 500: boom",))
    assert failed.answered == 408 and failed.error_rate == 12 / 518
    assert failed.failures == ["error rate 2.32% (12 of 518 row answers) above the SLO's 0.00%: batch 3 (rows "
                               "200-209): endpoint 'abalone-model-staging' answered 500: boom"]


def test_differing_answers_name_their_batch_and_rows():
    failed = gate(identical=416, max_abs_difference=0.5, differences=(
        "batch 0 (rows 0-417): 2 of 418 rows differ, e.g. rows 17, 301 (max |difference| 0.5)",))
    assert failed.failures == ["2 of 418 answers differ from the artifact's offline predictions (max |difference| "
                               "0.5): batch 0 (rows 0-417): 2 of 418 rows differ, e.g. rows 17, 301 (max "
                               "|difference| 0.5)"]


@pytest.mark.parametrize("instance_type, vcpus", [("ml.m5.large", 2), ("ml.t2.medium", 2), ("ml.c5.xlarge", 4),
                                                   ("ml.m5.4xlarge", 16)])
def test_a_sagemaker_endpoint_takes_one_request_at_a_time_per_vcpu(instance_type, vcpus):
    from modelops.backends.sagemaker.endpoints import instance_vcpus

    assert instance_vcpus(instance_type) == vcpus


# -- SageMaker, end to end on moto ----------------------------------------------------------------------------


def _gathered(backend, config) -> Dataset:
    """``config``'s real data split and written to moto's S3, as gather_data writes it."""
    from modelops.data.datasets import fetch_data, write_dataset
    from modelops.data.prepare import prepare_frame, read_raw, split_frame

    raw = fetch_data(config)
    splits = split_frame(prepare_frame(read_raw(raw.path, config.data), config), config.split)
    return write_dataset(backend.store, config, raw, splits)


def _sagemaker_package(backend, config, dataset: Dataset, rounds: int) -> PackageVersion:
    """An approved package of ``config`` trained here on ``dataset``, written to moto's S3 and registered."""
    from modelops.data.datasets import read_split
    from modelops.data.prepare import features_and_target
    from modelops.training.train import fit, pack_model

    (X, y), (Xv, yv) = (features_and_target(read_split(backend.store, dataset, s)) for s in ("train", "validation"))
    booster = fit(X, y, Xv, yv, {**config.training.hyperparameters, "num_round": rounds}).booster
    job = f"{config.name}-r{rounds}-{time.monotonic_ns()}"
    artifact = backend.store.put_bytes(backend.store.uri(config.name, "training", job, "output", "model.tar.gz"),
                                       pack_model(booster))
    training = TrainingResult(job_name=job, artifact_uri=artifact.uri, artifact_sha256=artifact.sha256,
                              image="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0",
                              container_version="3.2-0", xgboost_version="3.2", hyperparameters={"num_round": rounds},
                              eval_metric="rmse", curves={}, rounds=rounds, best_iteration=None, duration_seconds=0.1)
    package = backend.registry.register(config.name, training=training, metrics={}, data_sha256=dataset.raw_sha256,
                                        dataset_id=dataset.dataset_id,
                                        lineage=Lineage(git_commit="c" * 40, branch="feature", tree_hash="t" * 40))
    return backend.registry.approve(config.name, package.version, by="alice")


@pytest.mark.slow
def test_sagemaker_staging_gate_and_promotion_of_the_same_package(aws, monkeypatch):
    from modelops.data.datasets import load_dataset
    from modelops.release.deploy import deploy_package, stop_endpoint
    from modelops.release.gate import run_gate, staged_package
    from modelops.release.history import history_report, verify_history
    from tests.support.aws import sagemaker_on_moto
    from tests.support.hosting import SageMakerHosting

    monkeypatch.setenv("MODELOPS_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("CIRCLE_BUILD_URL", "https://circleci.com/gh/o/r/77")
    monkeypatch.setenv("CIRCLE_SHA1", "f" * 40)
    ops = sagemaker_on_moto()
    SageMakerHosting(ops.endpoints)
    quiet = dict(timeout=5, log=lambda line: None)
    with pytest.raises(PromotionRefused, match=r"the staging endpoint abalone-model-staging does not exist, so there "
                                               r"is nothing to promote\. Fix: .*--env staging"):
        staged_package(ops, CONFIG)

    with pytest.raises(StoreError, match="no dataset has been gathered"):
        load_dataset(ops.store, CONFIG)
    dataset = _gathered(ops, CONFIG)
    v1 = _sagemaker_package(ops, CONFIG, dataset, 20)
    deploy_package(ops, CONFIG, v1, env_name=STAGING, by="merger", **quiet)
    # Production takes nothing that has not been through the gate: refused before anything is created.
    with pytest.raises(PromotionRefused, match=r"abalone-model v1 has not been through the promotion gate on staging"):
        deploy_package(ops, CONFIG, v1, env_name=PRODUCTION, **quiet)
    assert ops.endpoints.status("abalone-model") is None

    # InvokeEndpoint's 6 MB, one request at a time per vCPU: model.yml's 1 x ml.m5.large has 2.
    assert ops.endpoints.limits("abalone-model-staging") == EndpointLimits(6 * 1024 ** 2, 2)
    result = run_gate(ops, CONFIG, log=lambda line: None)
    assert result.passed, result.failures
    assert (result.rows, result.identical, result.error_count) == (418, 418, 0)
    assert (result.batches, result.latency_requests, len(result.latencies_ms)) == (1, 418, 418)  # fewer than 1,000
    assert result.production_version is None and result.package.package_id == v1.package_id

    # The promotion: the package staging serves, by its id, into production.
    staged = staged_package(ops, CONFIG)
    deployed = deploy_package(ops, CONFIG, staged, env_name=PRODUCTION, by="approver", **quiet)
    production, staging = ops.endpoints.status("abalone-model"), ops.endpoints.status("abalone-model-staging")
    assert deployed.version == 1 and production.status == IN_SERVICE
    assert production.package_id == staging.package_id == v1.package_id

    # A second version whose gate fails: production keeps v1, and promoting v2 is refused.
    v2 = _sagemaker_package(ops, CONFIG, load_dataset(ops.store, CONFIG), 40)  # read back from S3, not rebuilt
    assert v2.dataset_id == v1.dataset_id
    deploy_package(ops, CONFIG, v2, env_name=STAGING, **quiet)
    strict = dataclasses.replace(CONFIG, environments={**CONFIG.environments, PRODUCTION: dataclasses.replace(
        CONFIG.deploy_environment(PRODUCTION), slo=SLO(p99_ms=0.000001))})
    failed = run_gate(ops, strict, log=lambda line: None)
    assert not failed.passed and failed.production_version == 1
    assert failed.failures == [f"p99 latency {failed.p99_ms:.1f} ms above the SLO's 1e-06 ms"]
    with pytest.raises(PromotionRefused, match=r"abalone-model v2 failed the promotion gate on staging at .*p99 "
                                               r"latency.*production is untouched"):
        deploy_package(ops, strict, staged_package(ops, strict), env_name=PRODUCTION, **quiet)
    assert ops.endpoints.status("abalone-model").version == 1

    # The history: one object per event in S3, chained; tags beside it; the question answered.
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="modelops-test", Prefix="modelops/abalone-model/history/")
            ["Contents"]]
    assert keys == [f"modelops/abalone-model/history/{n:08d}.json" for n in range(1, 10)]
    events = ops.history.events("abalone-model")
    assert [(e.action, e.environment, e.version) for e in events] == [
        ("registered", None, 1), ("Approved", None, 1), ("deployed", "staging", 1), ("gate-passed", "staging", 1),
        ("promoted", "production", 1), ("registered", None, 2), ("Approved", None, 2), ("deployed", "staging", 2),
        ("gate-failed", "staging", 2)]
    promoted = events[4]
    assert (promoted.by, promoted.package_id, promoted.git_commit, promoted.ci_url) == (
        "approver", v1.package_id, "f" * 40, "https://circleci.com/gh/o/r/77")
    sagemaker = boto3.client("sagemaker")
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(
        ResourceArn=sagemaker.describe_endpoint(EndpointName="abalone-model")["EndpointArn"])["Tags"]}
    assert {k: tags[k] for k in ("modelops:environment", "modelops:model", "modelops:package", "modelops:changed-by")
            } == {"modelops:environment": "production", "modelops:model": "abalone-model",
                  "modelops:package": v1.package_id, "modelops:changed-by": "approver"}
    assert tags["modelops:event"] == f"5:{promoted.hash}"
    staging_tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(
        ResourceArn=sagemaker.describe_endpoint(EndpointName="abalone-model-staging")["EndpointArn"])["Tags"]}
    assert staging_tags["modelops:gate"].startswith("gate-failed v2 ")
    assert ops.history.head("abalone-model") == (len(events), events[-1].hash)
    assert verify_history(ops.history, "abalone-model").intact

    stop_endpoint(ops, "abalone-model", by="erin", folder=ROOT)
    report = history_report(ops.history, "abalone-model", instant=promoted.at)
    assert [(s.env_name, s.version) for s in report.served] == [(STAGING, 1), (PRODUCTION, 1)]
    now = history_report(ops.history, "abalone-model", env_name=PRODUCTION)
    assert now.served[0].version is None and now.served[0].since.action == "stopped"
    assert now.served[0].since.by == "erin" and os.environ["CIRCLE_SHA1"] == now.served[0].since.git_commit
