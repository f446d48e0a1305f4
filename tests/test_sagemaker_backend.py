"""The sagemaker backend on moto: S3 store, training jobs, registry, endpoints, settings, retries.

Where moto lacks an operation or cannot be made to fail the way AWS does, ``botocore.stub.Stubber`` stands
in with responses shaped like AWS's documented ones; each such test says which operation and why.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from modelops.backends.sagemaker.aws import NAME_PATTERN, timestamped_name
from modelops.backends.sagemaker.endpoints import PREVIOUS_CONFIG_TAG, PREVIOUS_VERSION_TAG, VERSION_TAG
from modelops.backends.sagemaker.store import S3Store
from modelops.entities import APPROVED, PENDING, Lineage, PackageVersion
from modelops.errors import ConfigError, EndpointFailed, RegistryError, StoreError, TrainingFailed
from tests.support.aws import MOTO_BUCKET, MOTO_ROLE
from tests.support.sagemaker import (
    ACCOUNT,
    CONFIG_V1,
    CONFIG_V2,
    ENDPOINT_ARN,
    LINEAGE,
    REGION,
    XGBOOST_IMAGE,
    approved_package,
    described_endpoint,
    endpoint_tags,
    expect_new_model_and_config,
    package_v2,
    register,
    spec_for,
    trained,
)

pytestmark = pytest.mark.slow  # moto end to end



# -- settings ------------------------------------------------------------------------------------------------


@pytest.fixture
def no_settings(monkeypatch, tmp_path):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "SAGEMAKER_EXECUTION_ROLE_ARN", "MODELOPS_S3_BUCKET",
                 "MODELOPS_S3_PREFIX", "MODELOPS_SAGEMAKER_CONFIG", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # no profile region either
    monkeypatch.chdir(tmp_path)


def test_missing_role_is_a_config_error_before_anything_is_created(aws, no_settings, monkeypatch):
    from modelops.backends import get_backend

    monkeypatch.setenv("AWS_REGION", REGION)
    with pytest.raises(ConfigError, match=r"no SageMaker execution role\. Fix: export SAGEMAKER_EXECUTION_ROLE_ARN="):
        get_backend("sagemaker")
    assert boto3.client("s3").list_buckets()["Buckets"] == []  # not even the default bucket


def test_missing_region_is_a_config_error(aws, no_settings, monkeypatch):
    from modelops.backends import get_backend

    monkeypatch.setenv("SAGEMAKER_EXECUTION_ROLE_ARN", MOTO_ROLE)
    with pytest.raises(ConfigError, match=r"no AWS region\. Fix: export AWS_REGION"):
        get_backend("sagemaker")


def test_settings_from_a_config_file_and_malformed_values(aws, no_settings, monkeypatch, tmp_path):
    from modelops.settings import sagemaker_settings

    path = tmp_path / "sagemaker.yml"
    path.write_text(f"region: eu-west-1\nrole_arn: {MOTO_ROLE}\nbucket: my-bucket\nprefix: team/models\n")
    settings = sagemaker_settings(path)
    assert (settings.region, settings.role_arn, settings.bucket, settings.prefix) == (
        "eu-west-1", MOTO_ROLE, "my-bucket", "team/models")
    monkeypatch.setenv("AWS_REGION", REGION)  # the environment wins over the file
    assert sagemaker_settings(path).region == REGION
    path.write_text("region: eu-west-1\nrole_arn: arn:aws:iam::12:user/me\naws_secret_access_key: x\n")
    with pytest.raises(ConfigError, match="may hold only the keys"):
        sagemaker_settings(path)
    path.write_text("region: eu-west-1\nrole_arn: arn:aws:iam::12:user/me\n")
    with pytest.raises(ConfigError, match="is not an IAM role ARN"):
        sagemaker_settings(path)


def test_default_bucket_is_the_sagemaker_one_created_on_first_use(aws):
    from tests.support.aws import sagemaker_on_moto

    backend = sagemaker_on_moto(bucket=None)
    assert backend.store.uri("m", "x.csv") == f"s3://sagemaker-{REGION}-{ACCOUNT}/modelops/m/x.csv"
    assert f"sagemaker-{REGION}-{ACCOUNT}" in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]


def test_image_uri_comes_from_the_sagemaker_sdk(sagemaker):
    assert sagemaker.image_uri("3.2-0") == XGBOOST_IMAGE
    with pytest.raises(ConfigError, match="knows no XGBoost container '9.9-9'"):
        sagemaker.image_uri("9.9-9")


def test_timestamped_names_are_valid_sagemaker_names():
    at = datetime(2026, 11, 26, 16, 30, 5, tzinfo=UTC)
    name = timestamped_name("a" * 40, "v1234", now=at)
    assert len(name) <= 63 and NAME_PATTERN.match(name) and "-v1234-20261126163005-" in name
    assert NAME_PATTERN.match(timestamped_name("abalone-model", "v2", now=at))
    assert timestamped_name("abalone-model", "v2") != timestamped_name("abalone-model", "v2")


# -- store ---------------------------------------------------------------------------------------------------


def test_s3_round_trip_records_sha256(sagemaker, tmp_path):
    store = sagemaker.store
    uri = store.uri("abalone-model", "datasets", "x", "train.csv")
    assert uri == f"s3://{MOTO_BUCKET}/modelops/abalone-model/datasets/x/train.csv"
    assert not store.exists(uri)
    stored = store.put_bytes(uri, b"1,2,3\n", content_type="text/csv")
    assert stored.sha256 == hashlib.sha256(b"1,2,3\n").hexdigest() and stored.size == 6
    head = boto3.client("s3").head_object(Bucket=MOTO_BUCKET, Key="modelops/abalone-model/datasets/x/train.csv")
    assert head["Metadata"] == {"sha256": stored.sha256} and head["ContentType"] == "text/csv"
    assert store.exists(uri) and store.get_bytes(uri) == b"1,2,3\n"
    assert store.get_file(uri, tmp_path / "out" / "train.csv").read_bytes() == b"1,2,3\n"


def test_large_files_upload_multipart_with_sha256(aws, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=MOTO_BUCKET)
    store = S3Store(s3, MOTO_BUCKET, "p", TransferConfig(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20))
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * (11 * 2**12))  # 11 MiB: three parts
    stored = store.put_file(store.uri("big.bin"), path)
    head = s3.head_object(Bucket=MOTO_BUCKET, Key="p/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # S3's multipart ETag: <md5 of part md5s>-<parts>
    assert head["Metadata"]["sha256"] == stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert store.get_file(stored.uri, tmp_path / "back.bin").read_bytes() == path.read_bytes()


def test_replaced_object_is_refused_on_read(sagemaker, tmp_path):
    store = sagemaker.store
    uri = store.uri("abalone-model", "model.tar.gz")
    original = store.put_bytes(uri, b"the reviewed model")
    # Someone overwrites the object but keeps the old metadata (as a copy or a careless script would).
    boto3.client("s3").put_object(Bucket=MOTO_BUCKET, Key="modelops/abalone-model/model.tar.gz", Body=b"other bytes",
                                  Metadata={"sha256": original.sha256})
    with pytest.raises(StoreError, match=f"but {original.sha256} was recorded when it was written"):
        store.get_bytes(uri)
    with pytest.raises(StoreError, match="replaced or damaged"):
        store.get_file(uri, tmp_path / "m.tar.gz")
    assert not (tmp_path / "m.tar.gz").exists() and list(tmp_path.glob(".m.tar.gz*")) == []


def test_store_errors_name_the_uri(sagemaker):
    store = sagemaker.store
    with pytest.raises(StoreError, match=r"no object at s3://modelops-test/modelops/nothing\.csv"):
        store.get_bytes(store.uri("nothing.csv"))
    with pytest.raises(StoreError, match="use an s3://BUCKET/KEY URI"):
        store.get_bytes("file:///etc/passwd")
    with pytest.raises(StoreError, match="unsafe store key part '..'"):
        store.uri("..", "x")
    with pytest.raises(StoreError, match=r"could not upload to s3://no-such-bucket/k.*NoSuchBucket"):
        store.put_bytes("s3://no-such-bucket/k", b"x")


# -- training ------------------------------------------------------------------------------------------------




def container_log(job: str, rounds: int = 3) -> None:
    """What the XGBoost container writes to CloudWatch: one line per round (moto's jobs write none)."""
    logs = boto3.client("logs", region_name=REGION)
    try:
        logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job}/algo-1-1764174600"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    now = int(datetime.now(UTC).timestamp() * 1000)
    lines = ["[2026-11-26:16:30:01:INFO] Running XGBoost Sagemaker in algorithm mode"] + [
        f"[{i}]#011train-rmse:{3 - i * 0.5:.5f}#011validation-rmse:{3.2 - i * 0.4:.5f}" for i in range(rounds)]
    logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])


def test_a_training_job_is_created_as_requested_and_its_artifact_and_log_read_back(sagemaker):
    spec = spec_for(sagemaker.store)
    # moto completes training jobs at once but writes no model artifact: put the container's outputs there.
    artifact = sagemaker.store.put_bytes(f"{spec.output_uri}/output/model.tar.gz", b"model bytes")
    container_log(spec.job_name)
    container_log("abalone-model-20261126-163000-beefy")  # another job whose name starts the same
    lines = []
    result = sagemaker.trainer.train(spec, log=lines.append)

    assert result.artifact_uri == artifact.uri and result.artifact_sha256 == artifact.sha256
    assert result.image == XGBOOST_IMAGE and result.xgboost_version == "3.2"
    assert result.curves == {"train": [3.0, 2.5, 2.0], "validation": [3.2, 2.8, 2.4]} and result.rounds == 3
    assert result.eval_metric == "rmse" and sagemaker.store.exists(result.log_uri)
    assert lines[0] == f"{spec.job_name}: created ({XGBOOST_IMAGE}, 1 x ml.m5.large)"
    assert any(line.startswith(f"{spec.job_name}: Completed / Completed") for line in lines)
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=spec.job_name)
    assert job["AlgorithmSpecification"]["TrainingImage"] == XGBOOST_IMAGE
    assert job["HyperParameters"] == {"objective": "reg:squarederror", "num_round": "3", "eta": "0.2",
                                      "eval_metric": "rmse"}
    assert job["RoleArn"] == MOTO_ROLE and job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert [(c["ChannelName"], c["ContentType"], c["DataSource"]["S3DataSource"]["S3Uri"])
            for c in job["InputDataConfig"]] == [("train", "text/csv", spec.train_uri),
                                                 ("validation", "text/csv", spec.validation_uri)]
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 600


def test_completed_job_without_artifact_is_a_training_failure(sagemaker):
    spec = spec_for(sagemaker.store)
    with pytest.raises(TrainingFailed, match=r"Completed, but its model artifact is unreadable: no object at "
                                             r"s3://.*/training/.*/output/model\.tar\.gz"):
        sagemaker.trainer.train(spec, log=lambda line: None)


def described_job(job: str, status: str, secondary: str, **extra) -> dict:
    """A DescribeTrainingJob response as AWS documents it (required fields only, plus ``extra``)."""
    now = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    return {"TrainingJobName": job, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job}",
            "ModelArtifacts": {"S3ModelArtifacts": ""}, "TrainingJobStatus": status, "SecondaryStatus": secondary,
            "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600}, "CreationTime": now,
            "SecondaryStatusTransitions": [{"Status": secondary, "StartTime": now,
                                            "StatusMessage": f"{secondary} message"}], **extra}


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_failed_or_stopped_job_raises_with_its_failure_reason(sagemaker, status):
    # Stubber for CreateTrainingJob/DescribeTrainingJob: moto's jobs are Completed the moment they are
    # created, and a job that fails is exactly what this test is about.
    spec = spec_for(sagemaker.store)
    # A failure of the data, not of the hyperparameters (those are a ConfigError: tests/test_trainer_contract.py).
    reason = ("AlgorithmError: framework error: \nsagemaker_algorithm_toolkit.exceptions.UserError: label must be in "
              "[0,1] for logistic regression")
    client = sagemaker.trainer.sagemaker
    lines = []
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, job_request(spec))
        stub.add_response("describe_training_job", described_job(spec.job_name, "InProgress", "Training"),
                          {"TrainingJobName": spec.job_name})
        stub.add_response("describe_training_job",
                          described_job(spec.job_name, status, status, FailureReason=reason),
                          {"TrainingJobName": spec.job_name})
        with pytest.raises(TrainingFailed, match=rf"training job {spec.job_name} {status}: {re.escape(reason)}\. "
                                                 rf"Logs: CloudWatch /aws/sagemaker/TrainingJobs"):
            sagemaker.trainer.train(spec, log=lines.append)
        stub.assert_no_pending_responses()
    assert lines[1:] == [f"{spec.job_name}: InProgress / Training - Training message",
                         f"{spec.job_name}: {status} / {status} - {status} message"]


def job_request(spec) -> dict:
    from modelops.backends.sagemaker.trainer import training_job_request

    return training_job_request(spec, XGBOOST_IMAGE, MOTO_ROLE)


def test_training_job_wait_times_out_and_stops_the_job(sagemaker):
    # Stubber for DescribeTrainingJob (a job that stays InProgress) and StopTrainingJob: moto never runs a job.
    spec = spec_for(sagemaker.store)
    trainer = sagemaker.trainer
    trainer.timeout_seconds = 0.0001
    with Stubber(trainer.sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, job_request(spec))
        stub.add_response("describe_training_job", described_job(spec.job_name, "InProgress", "Downloading"))
        stub.add_response("stop_training_job", {}, {"TrainingJobName": spec.job_name})
        with pytest.raises(TrainingFailed, match=r"still InProgress \(Downloading\) after 0s; it was asked to stop"):
            trainer.train(spec, log=lambda line: None)
        stub.assert_no_pending_responses()


# -- throttling ----------------------------------------------------------------------------------------------


def throttle(client, operation: str, times: int) -> list[int]:
    """Make ``operation`` answer HTTP 400 ThrottlingException ``times`` times, then reach moto as usual.

    Not a Stubber: Stubber answers before botocore's retry handler runs, so it could not show a retry. This
    handler sits where the HTTP request would be sent, registered ahead of moto's, so each attempt of
    botocore's retry loop goes through it. Returns the list of attempt numbers it saw.
    """
    attempts: list[int] = []

    class Raw:
        def stream(self, **kwargs):
            yield json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()

    def answer(request, **kwargs):
        attempts.append(len(attempts) + 1)
        if len(attempts) <= times:
            return AWSResponse(request.url, 400, {"x-amzn-ErrorType": "ThrottlingException"}, Raw())
        return None

    client.meta.events.register_first(f"before-send.sagemaker.{operation}", answer)
    return attempts


@pytest.fixture
def backoffs(monkeypatch) -> list[float]:
    """The delays botocore sleeps between attempts (recorded instead of slept)."""
    import botocore.endpoint

    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint.time, "sleep", slept.append)
    return slept


def test_throttling_is_retried_with_backoff(sagemaker, backoffs):
    registry = sagemaker.registry
    attempts = throttle(registry.sagemaker, "ListModelPackages", times=2)
    assert registry.versions("abalone-model") == []
    assert attempts == [1, 2, 3]  # throttled twice, then answered
    # exponential backoff with full jitter: attempt n waits a random time in [0, 2**(n-1)] seconds
    assert len(backoffs) == 2 and 0 <= backoffs[0] <= 1 and 0 <= backoffs[1] <= 2
    assert registry.sagemaker.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}


def test_throttling_beyond_the_retries_is_a_clear_error(aws, backoffs):
    from tests.support.aws import sagemaker_on_moto

    backend = sagemaker_on_moto()
    backend.aws.config = backend.aws.config.merge(type(backend.aws.config)(retries={"mode": "standard",
                                                                                  "total_max_attempts": 2}))
    backend.aws._clients.pop("sagemaker", None)
    attempts = throttle(backend.registry.sagemaker, "DescribeModelPackageGroup", times=5)
    with pytest.raises(RegistryError, match="reading model package group abalone-model failed: .*ThrottlingException"):
        backend.registry.register("abalone-model", training=trained(), metrics={}, data_sha256="d" * 64,
                                  dataset_id="d1", lineage=Lineage())
    assert attempts == [1, 2]


# -- registry ------------------------------------------------------------------------------------------------








def test_registration_is_a_sagemaker_model_package(sagemaker):
    report = {"metrics": {"rmse": 2.13}, "quality_gates": {"rmse": True}}
    package = register(sagemaker.registry, report=report)
    assert (package.group, package.version, package.status) == ("abalone-model", 1, PENDING)
    assert package.lineage == LINEAGE and package.hyperparameters["num_round"] == 50
    raw = boto3.client("sagemaker").describe_model_package(ModelPackageName=package.package_id)
    assert raw["ModelApprovalStatus"] == "PendingManualApproval"
    [container] = raw["InferenceSpecification"]["Containers"]
    assert container["Image"] == XGBOOST_IMAGE and container["ModelDataUrl"] == trained().artifact_uri
    assert raw["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv"]
    assert raw["InferenceSpecification"]["SupportedResponseMIMETypes"] == ["text/csv"]
    properties = raw["CustomerMetadataProperties"]
    assert properties["lineage:git_commit"] == json.dumps("c" * 40) and properties["lineage:branch"] == '"feature/x"'
    assert properties["lineage:tree_hash"] == json.dumps("t" * 40)
    assert properties["lineage:notebook_artifact"] == '"abalone_model/train_register.html"'
    assert properties["artifact_sha256"] == "a" * 64 and properties["metric:rmse"] == "2.13"
    statistics = raw["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert json.loads(sagemaker.store.get_bytes(statistics["S3Uri"])) == report


def test_the_monitoring_baseline_is_the_packages_drift_check_baselines(sagemaker):
    root = f"s3://{MOTO_BUCKET}/modelops/abalone-model/training/job-1/baseline"
    baselines = {f"{part}_{file}": f"{root}/{part}/{file}.json" for part in ("data", "prediction", "quality")
                 for file in ("statistics", "constraints")}
    package = register(sagemaker.registry, baselines=baselines)
    raw = boto3.client("sagemaker").describe_model_package(ModelPackageName=package.package_id)
    drift = raw["DriftCheckBaselines"]
    assert drift["ModelDataQuality"] == {
        "Statistics": {"ContentType": "application/json", "S3Uri": f"{root}/data/statistics.json"},
        "Constraints": {"ContentType": "application/json", "S3Uri": f"{root}/data/constraints.json"}}
    assert drift["ModelQuality"]["Constraints"]["S3Uri"] == f"{root}/quality/constraints.json"
    # DriftCheckBaselines has no place for a prediction baseline: it is in the metadata properties.
    assert raw["CustomerMetadataProperties"]["baseline:prediction_statistics"] == f"{root}/prediction/statistics.json"
    assert package.baselines == baselines


def test_approval_is_recorded_in_sagemaker_with_the_approver(sagemaker):
    registry = sagemaker.registry
    register(registry)
    register(registry, training=trained("job-2", "b" * 64))
    register(registry, training=trained("job-3", "c" * 64))
    registry.approve("abalone-model", 1, by="alice", note="rmse fine")
    registry.approve("abalone-model", 3, by="bob")
    registry.reject("abalone-model", 2, by="carol", note="leaks the target")
    raw = boto3.client("sagemaker").describe_model_package(ModelPackageName=registry.get("abalone-model", 1).package_id)
    assert raw["ModelApprovalStatus"] == APPROVED and raw["ApprovalDescription"] == "rmse fine"
    assert raw["CustomerMetadataProperties"]["status:by"] == "alice"
    assert raw["CustomerMetadataProperties"]["lineage:tree_hash"] == json.dumps("t" * 40)  # kept on update
    assert [p.version for p in registry.versions("abalone-model", APPROVED)] == [3, 1]
    assert [(p.version, p.status, p.status_by) for p in registry.versions("abalone-model")] == [
        (3, APPROVED, "bob"), (2, "Rejected", "carol"), (1, APPROVED, "alice")]
    assert registry.latest("abalone-model", APPROVED).artifact_sha256 == "c" * 64


def test_status_changed_elsewhere_is_refused(sagemaker):
    registry = sagemaker.registry
    package = register(registry)
    boto3.client("sagemaker").update_model_package(ModelPackageArn=package.package_id, ModelApprovalStatus="Rejected")
    with pytest.raises(RegistryError, match=r"changed status while this command ran \(now Rejected\)"):
        registry._set_status(package, APPROVED, by="alice", note=None, expected=PENDING)


# -- endpoints -----------------------------------------------------------------------------------------------




def test_first_deploy_creates_model_config_and_endpoint(sagemaker):
    package = approved_package(sagemaker)
    lines = []
    deployment = sagemaker.endpoints.deploy("abalone-model", package, instance_type="ml.c5.large", timeout=5,
                                            log=lines.append)
    assert (deployment.version, deployment.previous_version, deployment.status) == (1, None, "InService")
    assert deployment.url == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/abalone-model/invocations"
    client = boto3.client("sagemaker")
    endpoint = client.describe_endpoint(EndpointName="abalone-model")
    config = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and variant["InstanceType"] == "ml.c5.large"
    assert re.fullmatch(r"abalone-model-v1-\d{14}-[0-9a-f]{4}", variant["ModelName"])
    model = client.describe_model(ModelName=variant["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == package.package_id
    assert model["ExecutionRoleArn"] == MOTO_ROLE
    status = sagemaker.endpoints.status("abalone-model")
    assert (status.status, status.version, status.previous_version) == ("InService", 1, None)
    assert lines[-1] == "abalone-model serves v1 (before: nothing)"
    # an endpoint someone else made is not ours: not listed, not stopped
    client.create_model(ModelName="x", ExecutionRoleArn=MOTO_ROLE, PrimaryContainer={"Image": XGBOOST_IMAGE})
    client.create_endpoint_config(EndpointConfigName="theirs", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "x", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    client.create_endpoint(EndpointName="abalone-model-theirs", EndpointConfigName="theirs")
    assert [s.name for s in sagemaker.endpoints.list()] == ["abalone-model"]
    assert sagemaker.endpoints.status("abalone-model-theirs") is None
    with pytest.raises(EndpointFailed, match="no endpoint 'abalone-model-theirs' created by this project"):
        sagemaker.endpoints.stop("abalone-model-theirs")


def test_model_yml_serving_reaches_the_sagemaker_model_environment(sagemaker):
    import yaml

    from modelops.config import parse_model_config
    from modelops.release.deploy import deploy_package
    from tests.support.paths import ROOT

    raw = yaml.safe_load((ROOT / "churn_model" / "model.yml").read_text())
    raw["serving"] = {"inference_output": ["predicted_label", "probability"], "default_accept": "application/json"}
    config = parse_model_config(raw)
    deploy_package(sagemaker, config, approved_package(sagemaker), timeout=5, log=lambda line: None)
    client = boto3.client("sagemaker")
    endpoint = client.describe_endpoint(EndpointName="churn-model-staging")  # deploys go to staging by default
    [variant] = client.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"]
    container = client.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]
    assert container["Environment"] == {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability",
                                        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}
    assert container["ModelPackageName"].startswith("arn:aws:sagemaker:")
    sagemaker.endpoints.deploy("plain", approved_package(sagemaker, "plain-20261126-163000-beef"), timeout=5,
                               log=lambda line: None)
    [variant] = client.describe_endpoint_config(EndpointConfigName=client.describe_endpoint(
        EndpointName="plain")["EndpointConfigName"])["ProductionVariants"]
    assert "Environment" not in client.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]


def test_model_yml_data_capture_is_the_endpoint_configs_data_capture_config(sagemaker):
    import yaml

    from modelops.config import parse_model_config
    from modelops.release.deploy import deploy_package
    from tests.support.paths import ROOT

    raw = yaml.safe_load((ROOT / "churn_model" / "model.yml").read_text())
    raw["monitoring"] = {"data_capture": {"enabled": True, "sampling_percentage": 12.5}}
    config = parse_model_config(raw)
    deploy_package(sagemaker, config, approved_package(sagemaker), timeout=5, log=lambda line: None)
    client = boto3.client("sagemaker")
    described = client.describe_endpoint_config(
        EndpointConfigName=client.describe_endpoint(EndpointName=f"{config.name}-staging")["EndpointConfigName"])
    # What the SageMaker SDK's DataCaptureConfig(enable_capture=True, ...)._to_request_dict() sends.
    assert described["DataCaptureConfig"] == {
        "EnableCapture": True, "InitialSamplingPercentage": 13,
        "DestinationS3Uri": f"s3://{MOTO_BUCKET}/modelops/churn-model/data-capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}}
    raw["monitoring"] = {"data_capture": {"enabled": False}}
    deploy_package(sagemaker, parse_model_config({**raw, "name": "plain"}),
                   approved_package(sagemaker, "plain-20261126-163000-beef"), timeout=5, log=lambda line: None)
    plain = client.describe_endpoint_config(
        EndpointConfigName=client.describe_endpoint(EndpointName="plain-staging")["EndpointConfigName"])
    assert not plain.get("DataCaptureConfig")  # capture off: none sent (moto answers an empty one)


def test_deploy_refuses_an_artifact_changed_after_training(sagemaker):
    package = approved_package(sagemaker)
    sagemaker.store.put_bytes(package.artifact_uri, b"tampered")
    with pytest.raises(EndpointFailed, match="the artifact changed after training. Nothing was deployed"):
        sagemaker.endpoints.deploy("abalone-model", package, timeout=5, log=lambda line: None)
    assert boto3.client("sagemaker").list_models()["Models"] == []


def test_stop_removes_only_what_was_created_for_that_endpoint(sagemaker):
    endpoints = sagemaker.endpoints
    endpoints.deploy("abalone-model", approved_package(sagemaker), timeout=5, log=lambda line: None)
    other = approved_package(sagemaker, "abalone-model-2-20261126-163000-beef")
    other = PackageVersion(**{**other.__dict__, "group": "abalone-model-2"})
    endpoints.deploy("abalone-model-2", other, timeout=5, log=lambda line: None)
    client = boto3.client("sagemaker")
    # Same prefix, not created by modelops (no tag): must survive.
    client.create_model(ModelName="abalone-model-v1-manual", ExecutionRoleArn=MOTO_ROLE,
                        PrimaryContainer={"Image": XGBOOST_IMAGE})
    client.create_endpoint_config(EndpointConfigName="abalone-model-v1-manual", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "abalone-model-v1-manual", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 1}])

    endpoints.stop("abalone-model")

    assert [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]] == ["abalone-model-2"]
    models = sorted(m["ModelName"] for m in client.list_models()["Models"])
    configs = sorted(c["EndpointConfigName"] for c in client.list_endpoint_configs()["EndpointConfigs"])
    assert len(models) == len(configs) == 2
    assert models[0].startswith("abalone-model-2-v2-") and models[1] == "abalone-model-v1-manual"
    assert configs[0].startswith("abalone-model-2-v2-") and configs[1] == "abalone-model-v1-manual"
    assert endpoints.status("abalone-model") is None


# UpdateEndpoint is not implemented by moto 5.2.5, so deploys onto an existing endpoint and rollbacks run
# against a Stubber on the SageMaker client, answering every call of the sequence with responses shaped as
# AWS documents them (DescribeEndpoint, ListTags, UpdateEndpoint, AddTags ...). S3 (the artifact check)
# stays on moto.











def test_update_switches_and_records_the_previous_config(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    lines = []
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1), {"EndpointName": "abalone-model"})
        stub.add_response("list_tags", endpoint_tags(1), {"ResourceArn": ENDPOINT_ARN})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "abalone-model", "EndpointConfigName": CONFIG_V2})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Updating"))
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V2))
        stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": ENDPOINT_ARN, "Tags": [
            {"Key": "modelops:endpoint", "Value": "abalone-model"}, {"Key": VERSION_TAG, "Value": "2"},
            {"Key": PREVIOUS_VERSION_TAG, "Value": "1"}, {"Key": PREVIOUS_CONFIG_TAG, "Value": CONFIG_V1}]})
        deployment = endpoints.deploy("abalone-model", package, timeout=5, log=lines.append)
        stub.assert_no_pending_responses()
    assert (deployment.version, deployment.previous_version, deployment.changed) == (2, 1, True)
    assert lines[-3:] == ["abalone-model: Updating", "abalone-model: InService", "abalone-model serves v2 (before: v1)"]


def test_failed_update_says_the_previous_config_keeps_serving(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1))
        stub.add_response("list_tags", endpoint_tags(1))
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Updating"))
        # A failed update: SageMaker keeps the old fleet, returns to InService on the old config, says why.
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, FailureReason=reason))
        with pytest.raises(EndpointFailed, match=rf"deploy of abalone-model to v2 failed: {re.escape(reason)} v1 keeps "
                                                 rf"serving \(endpoint config {CONFIG_V1}\)"):
            endpoints.deploy("abalone-model", package, timeout=5, log=lambda line: None)
        stub.assert_no_pending_responses()  # and no AddTags: the record still says v1


def test_update_wait_times_out_saying_what_serves_meanwhile(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1))
        stub.add_response("list_tags", endpoint_tags(1))
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Updating"))
        with pytest.raises(EndpointFailed, match=rf"still Updating after 0s; SageMaker carries on, and v1 "
                                                 rf"\({CONFIG_V1}\) keeps serving until it finishes"):
            endpoints.deploy("abalone-model", package, timeout=0, log=lambda line: None)
        stub.assert_no_pending_responses()


def test_endpoint_that_fails_to_create_says_nothing_serves(sagemaker):
    package = approved_package(sagemaker)
    endpoints = sagemaker.endpoints
    reason = ('Failed to download model data for container "container_1" from URL: "s3://modelops-test/m.tar.gz". '
              "Please ensure that there is an object located at the URL and that the role passed to CreateModel "
              "has permissions to download the object.")
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_client_error("describe_endpoint", "ValidationException",
                              f"Could not find endpoint \"{ENDPOINT_ARN}\".")
        stub.add_response("create_endpoint", {"EndpointArn": ENDPOINT_ARN})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Creating"))
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Failed", FailureReason=reason))
        with pytest.raises(EndpointFailed, match=rf"endpoint Failed: {re.escape(reason[:-1])}\. Nothing is serving"):
            endpoints.deploy("abalone-model", package, timeout=5, log=lambda line: None)
        stub.assert_no_pending_responses()


def test_rollback_updates_back_to_the_previous_config(sagemaker):
    endpoints = sagemaker.endpoints
    with Stubber(endpoints.sagemaker) as stub:
        for _ in range(2):  # rollback reads the record, then the switch reads it again
            stub.add_response("describe_endpoint", described_endpoint(CONFIG_V2))
            stub.add_response("list_tags", endpoint_tags(2, previous=(1, CONFIG_V1)))
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "abalone-model", "EndpointConfigName": CONFIG_V1})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V2, "Updating"))
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1))
        stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": ENDPOINT_ARN, "Tags": [
            {"Key": "modelops:endpoint", "Value": "abalone-model"}, {"Key": VERSION_TAG, "Value": "1"},
            {"Key": PREVIOUS_VERSION_TAG, "Value": "2"}, {"Key": PREVIOUS_CONFIG_TAG, "Value": CONFIG_V2}]})
        deployment = endpoints.rollback("abalone-model", timeout=5, log=lambda line: None)
        stub.assert_no_pending_responses()
    assert (deployment.version, deployment.previous_version) == (1, 2)


def test_a_rollback_without_a_previous_version_is_refused(sagemaker):
    endpoints = sagemaker.endpoints
    endpoints.deploy("abalone-model", approved_package(sagemaker), timeout=5, log=lambda line: None)
    with pytest.raises(EndpointFailed, match=r"has no previous version to roll back to \(it serves v1"):
        endpoints.rollback("abalone-model", timeout=5)
    with pytest.raises(EndpointFailed, match="no endpoint 'nothing' to roll back"):
        endpoints.rollback("nothing", timeout=5)


def test_invoke_reaches_the_runtime(sagemaker):
    sagemaker.endpoints.deploy("abalone-model", approved_package(sagemaker), timeout=5, log=lambda line: None)
    # moto answers with a canned body: this checks the wiring, not the model.
    assert sagemaker.endpoints.invoke("abalone-model", b"1,2,3\n")


def test_invoke_translates_the_runtime_errors(sagemaker):
    # Stubber: moto's runtime answers every invocation with a canned 200, never a container's error.
    endpoints = sagemaker.endpoints
    with Stubber(endpoints.runtime) as stub:
        stub.add_client_error("invoke_endpoint", "ModelError", 'Received client error (415) from primary with message '
                              '"Content type text/plain is not supported".', 424,
                              modeled_fields={"OriginalStatusCode": 415,
                                              "OriginalMessage": "Content type text/plain is not supported",
                                              "LogStreamArn": "arn:aws:logs:us-east-1:123456789012:log-group:x"})
        stub.add_client_error("invoke_endpoint", "ValidationError",
                              "Endpoint abalone-model of account 123456789012 not found.", 400)
        with pytest.raises(EndpointFailed, match=r"endpoint 'abalone-model' answered 415: Content type text/plain "
                                                 r"is not supported \(ModelError"):
            endpoints.invoke("abalone-model", b"1,2,3\n", content_type="text/plain")
        with pytest.raises(EndpointFailed, match=r"does not exist \(ValidationError: Endpoint abalone-model of "
                                                 r"account 123456789012 not found.\). Fix: see .*CloudWatch"):
            endpoints.invoke("abalone-model", b"1,2,3\n")
        stub.assert_no_pending_responses()


def test_local_backend_imports_neither_boto3_nor_the_sdk(tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom modelops.backends import get_backend\nb = get_backend('local')\n"
            "b.registry, b.trainer, b.endpoints.list(), b.endpoints.status('x'), b.endpoints.runtime_url()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'sagemaker')))\n"
            "import modelops.backends.sagemaker\n"
            "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('boto3', 'sagemaker')}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "MODELOPS_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "['boto3']"]  # the SDK loads only when an image URI is asked for
