"""Production's scale settings on the sagemaker backend: guarded rollout, autoscaling, distributed training.

moto 5.2.5 has no UpdateEndpoint, so updates run against a Stubber on the SageMaker client, which checks every
request against botocore's service model and the exact parameters expected here (as in test_sagemaker_backend).
CloudWatch alarms, Application Auto Scaling and S3 stay on moto: botocore validates those requests against the
same models before moto stores them, and the tests read back what was stored.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from modelops.backends.sagemaker import guardrails
from modelops.config import SLO, Autoscaling, Rollout
from modelops.errors import ConfigError, EndpointFailed, RolloutRolledBack
from tests.support.sagemaker import (
    CONFIG_V1,
    CONFIG_V2,
    ENDPOINT_ARN,
    PREVIOUS_CONFIG_TAG,
    PREVIOUS_VERSION_TAG,
    VERSION_TAG,
    approved_package,
    described_endpoint,
    endpoint_tags,
    expect_new_model_and_config,
    package_v2,
    spec_for,
)

pytestmark = pytest.mark.slow  # moto end to end

SLO_GATED = SLO(p50_ms=100, p99_ms=500, error_rate=0.01)
CANARY = Rollout("canary", 10, 300, 600, slo=SLO_GATED)
SCALING = Autoscaling(1, 4, 1000)
RESOURCE = "endpoint/abalone-model/variant/AllTraffic"


def model_errors(operation: str, service: str, params: dict) -> str:
    """botocore's own validation of ``params`` for ``operation`` ('' when they fit the service model)."""
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    return ParamValidator().validate(params, model.input_shape).generate_report()


# -- the requests --------------------------------------------------------------------------------------------


def test_canary_is_a_blue_green_update_with_a_canary_a_bake_and_the_alarms():
    config = guardrails.deployment_config(CANARY, ["a-5xx", "a-latency"])
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 300,
                                            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
            "TerminationWaitInSeconds": 600,
            "MaximumExecutionTimeoutInSeconds": 1800 + 300 + 600},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a-5xx"}, {"AlarmName": "a-latency"}]}}
    assert model_errors("UpdateEndpoint", "sagemaker", {"EndpointName": "e", "EndpointConfigName": "c",
                                                        "DeploymentConfig": config}) == ""


def test_linear_steps_and_an_all_at_once_bake_and_the_timeout_range():
    linear = guardrails.deployment_config(Rollout("linear", 25, 120, 60), ["x"])
    policy = linear["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "LINEAR", "WaitIntervalInSeconds": 120,
                                                     "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert policy["MaximumExecutionTimeoutInSeconds"] == 1800 + 3 * 120 + 60  # 4 steps of 25%: 3 waits between
    baked = guardrails.deployment_config(Rollout("all_at_once", bake_seconds=900), ["x"])
    assert baked["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE",
                                                                            "WaitIntervalInSeconds": 0}
    assert baked["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 900
    longest = guardrails.deployment_config(Rollout("linear", 1, 3600, 3600), ["x"])
    assert longest["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == 28800  # the API's maximum
    for config in (linear, baked, longest):
        assert model_errors("UpdateEndpoint", "sagemaker", {"EndpointName": "e", "EndpointConfigName": "c",
                                                            "DeploymentConfig": config}) == ""
    # Not guarded: SageMaker's default update (blue/green, all at once, no bake), no DeploymentConfig at all.
    assert not guardrails.is_guarded(Rollout("all_at_once")) and not guardrails.is_guarded(None)


def test_alarms_hold_the_slo_in_the_metrics_units():
    five_xx, latency = guardrails.rollout_alarms("abalone-model", SLO_GATED)
    dimensions = [{"Name": "EndpointName", "Value": "abalone-model"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    assert latency.request() == {
        "AlarmName": "modelops-abalone-model-ModelLatency",
        "AlarmDescription": "modelops guarded rollout of abalone-model: average model latency above the p99 SLO of "
                            "500 ms",
        "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Dimensions": dimensions,
        "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
        "Threshold": 500_000.0,  # ModelLatency is in microseconds
        "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
        "Tags": [{"Key": "modelops:endpoint", "Value": "abalone-model"}]}
    assert (five_xx.name, five_xx.request()["MetricName"], five_xx.request()["Threshold"]) == (
        "modelops-abalone-model-Invocation5XXErrors", "Invocation5XXErrors", 0.01)
    for alarm in (five_xx, latency):
        assert model_errors("PutMetricAlarm", "cloudwatch", alarm.request()) == ""
    # No SLO at all: only errors are guarded, and any 5xx in a minute trips it (the gate's default error_rate 0).
    [only] = guardrails.rollout_alarms("m", None)
    assert (only.metric, only.threshold) == ("Invocation5XXErrors", 0.0)


def test_autoscaling_requests_fit_application_auto_scaling():
    target = guardrails.scalable_target_request("abalone-model", SCALING)
    policy = guardrails.scaling_policy_request("abalone-model", SCALING)
    assert target == {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                      "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "MinCapacity": 1,
                      "MaxCapacity": 4}
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 1000.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
    assert model_errors("RegisterScalableTarget", "application-autoscaling", target) == ""
    assert model_errors("PutScalingPolicy", "application-autoscaling", policy) == ""


# -- guarded updates -----------------------------------------------------------------------------------------


def expect_guarded_update(stub, package) -> None:
    expect_new_model_and_config(stub, package)
    stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1), {"EndpointName": "abalone-model"})
    stub.add_response("list_tags", endpoint_tags(1), {"ResourceArn": ENDPOINT_ARN})
    stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, {
        "EndpointName": "abalone-model", "EndpointConfigName": CONFIG_V2,
        "DeploymentConfig": guardrails.deployment_config(CANARY, ["modelops-abalone-model-Invocation5XXErrors",
                                                                  "modelops-abalone-model-ModelLatency"])})
    stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, "Updating"))


@pytest.mark.slow  # moto end to end
def test_a_canary_update_creates_the_alarms_then_sends_the_deployment_config(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    lines = []
    with Stubber(endpoints.sagemaker) as stub:
        expect_guarded_update(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V2))
        stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": ENDPOINT_ARN, "Tags": [
            {"Key": "modelops:endpoint", "Value": "abalone-model"}, {"Key": VERSION_TAG, "Value": "2"},
            {"Key": PREVIOUS_VERSION_TAG, "Value": "1"}, {"Key": PREVIOUS_CONFIG_TAG, "Value": CONFIG_V1}]})
        deployment = endpoints.deploy("abalone-model", package, timeout=5, rollout=CANARY, log=lines.append)
        stub.assert_no_pending_responses()
    assert (deployment.version, deployment.previous_version) == (2, 1)
    alarms = boto3.client("cloudwatch").describe_alarms(AlarmNamePrefix="modelops-abalone-model-")["MetricAlarms"]
    assert {(a["AlarmName"], a["MetricName"], a["Statistic"], a["Threshold"], a["Period"], a["EvaluationPeriods"],
             a["ComparisonOperator"], a["TreatMissingData"]) for a in alarms} == {
        ("modelops-abalone-model-Invocation5XXErrors", "Invocation5XXErrors", "Average", 0.01, 60, 1,
         "GreaterThanThreshold", "notBreaching"),
        ("modelops-abalone-model-ModelLatency", "ModelLatency", "Average", 500_000.0, 60, 1,
         "GreaterThanThreshold", "notBreaching")}
    assert all(a["Namespace"] == "AWS/SageMaker" and a["Dimensions"] == [
        {"Name": "EndpointName", "Value": "abalone-model"}, {"Name": "VariantName", "Value": "AllTraffic"}]
        for a in alarms)
    assert any(re.search(r"updating from v1 .* to v2 \(.*, canary 10% for 300s, bake 600s, rolled back by its "
                         r"alarms\)", line) for line in lines)


@pytest.mark.slow  # moto
def test_an_alarm_that_trips_rolls_back_and_the_old_version_keeps_serving(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    reason = "Deployment was rolled back: alarm modelops-abalone-model-Invocation5XXErrors went into ALARM."
    with Stubber(endpoints.sagemaker) as stub:
        expect_guarded_update(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1, FailureReason=reason))
        with pytest.raises(RolloutRolledBack, match=r"deploy of abalone-model to v2 failed: Deployment was rolled "
                                                    r"back.*\(alarms: modelops-abalone-model-Invocation5XXErrors, "
                                                    r"modelops-abalone-model-ModelLatency; see their history in "
                                                    r"CloudWatch\)\. v1 keeps serving") as caught:
            endpoints.deploy("abalone-model", package, timeout=5, rollout=CANARY, log=lambda line: None)
        assert (caught.value.version, caught.value.rolled_back) == (1, 2)  # what deploy_package records
        stub.assert_no_pending_responses()  # no AddTags: the record still says v1


@pytest.mark.slow  # moto
def test_the_wait_covers_the_traffic_steps_and_the_bake(sagemaker, monkeypatch):
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    waited = []
    monkeypatch.setattr(type(endpoints), "_wait", lambda self, name, timeout, log, serving=None: waited.append(
        timeout) or described_endpoint(CONFIG_V1, FailureReason="rolled back"))
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1))
        stub.add_response("list_tags", endpoint_tags(1))
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN})
        with pytest.raises(EndpointFailed):
            endpoints.deploy("abalone-model", package, timeout=600, rollout=CANARY, log=lambda line: None)
    assert waited == [600 + 300 + 600]


@pytest.mark.slow  # moto
def test_a_latency_alarm_goes_when_the_slo_drops_p99(aws):
    alarms = guardrails.Alarms(boto3.client("cloudwatch"))
    alarms.put("m", SLO_GATED, log=lambda line: None)
    assert alarms.put("m", SLO(error_rate=0.05), log=lambda line: None) == ["modelops-m-Invocation5XXErrors"]
    stored = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]
    assert [(a["AlarmName"], a["Threshold"]) for a in stored] == [("modelops-m-Invocation5XXErrors", 0.05)]


# -- autoscaling ---------------------------------------------------------------------------------------------


def registered(name: str = "abalone-model") -> tuple[list, list]:
    client = boto3.client("application-autoscaling")
    rid = f"endpoint/{name}/variant/AllTraffic"
    return (client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])["ScalableTargets"],
            client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)["ScalingPolicies"])


@pytest.mark.slow  # moto
def test_production_is_registered_with_application_auto_scaling_and_stop_removes_it(sagemaker):
    lines = []
    sagemaker.endpoints.deploy("abalone-model", approved_package(sagemaker), timeout=5, autoscaling=SCALING,
                               log=lines.append)
    [target], [policy] = registered()
    assert (target["MinCapacity"], target["MaxCapacity"], target["ScalableDimension"]) == (
        1, 4, "sagemaker:variant:DesiredInstanceCount")
    assert (policy["PolicyName"], policy["PolicyType"]) == ("modelops-invocations-per-instance",
                                                            "TargetTrackingScaling")
    assert policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 1000.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}
    assert "abalone-model: autoscaling 1-4 instances, target 1000 invocations per instance per minute" in lines
    guardrails.Alarms(boto3.client("cloudwatch")).put("abalone-model", SLO_GATED, log=lambda line: None)

    sagemaker.endpoints.stop("abalone-model")

    assert registered() == ([], [])
    assert boto3.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


@pytest.mark.slow  # moto
def test_model_yml_without_autoscaling_removes_a_registration(sagemaker):
    scaling = sagemaker.endpoints.scaling
    scaling.apply("abalone-model", SCALING, log=lambda line: None)
    lines = []
    scaling.apply("abalone-model", None, log=lines.append)
    assert registered() == ([], [])
    assert lines == ["abalone-model: autoscaling removed (model.yml has none); the instance count stays where it is"]


@pytest.mark.slow  # moto end to end
def test_an_instance_type_change_deregisters_autoscaling_for_the_update_then_registers_again(sagemaker,
                                                                                            monkeypatch):
    # SageMaker refuses UpdateEndpoint when it changes a scalable target's instance type (its guide: deregister,
    # update, register again); a change of model alone is allowed.
    package = package_v2(sagemaker, monkeypatch)
    endpoints = sagemaker.endpoints
    endpoints.scaling.apply("abalone-model", Autoscaling(1, 2, 500), log=lambda line: None)
    seen = []
    real_update = None

    def registered_at_update(**kwargs):
        seen.append(registered())
        return real_update(**kwargs)

    lines = []
    with Stubber(endpoints.sagemaker) as stub:
        expect_new_model_and_config(stub, package)
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V1))
        stub.add_response("list_tags", endpoint_tags(1))
        stub.add_response("describe_endpoint_config", {
            "EndpointConfigName": CONFIG_V1, "EndpointConfigArn": f"{ENDPOINT_ARN}-config",
            "CreationTime": described_endpoint(CONFIG_V1)["CreationTime"],
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": CONFIG_V1,
                                    "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]},
            {"EndpointConfigName": CONFIG_V1})
        stub.add_response("update_endpoint", {"EndpointArn": ENDPOINT_ARN},
                          {"EndpointName": "abalone-model", "EndpointConfigName": CONFIG_V2})
        stub.add_response("describe_endpoint", described_endpoint(CONFIG_V2))
        stub.add_response("add_tags", {"Tags": []})
        real_update = endpoints.sagemaker.update_endpoint
        monkeypatch.setattr(endpoints.sagemaker, "update_endpoint", registered_at_update)
        endpoints.deploy("abalone-model", package, instance_type="ml.c5.xlarge", timeout=5, autoscaling=SCALING,
                         log=lines.append)
        stub.assert_no_pending_responses()
    assert seen == [([], [])]  # nothing registered while the instance type changed
    [target], [policy] = registered()
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)  # model.yml's, registered after the switch
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 1000.0
    assert ("abalone-model: autoscaling deregistered while the instance type changes from ml.m5.large to "
            "ml.c5.xlarge") in lines


@pytest.mark.slow  # moto end to end
def test_deploy_package_passes_production_rollout_slo_and_autoscaling(sagemaker, monkeypatch):
    import yaml

    from modelops.config import parse_model_config
    from modelops.release.deploy import deploy_package
    from tests.support.paths import ROOT

    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    raw["environments"]["production"].update(
        rollout={"strategy": "linear", "traffic_percent": 50, "interval_seconds": 120, "bake_seconds": 300},
        autoscaling={"min_instances": 1, "max_instances": 3, "target_invocations_per_instance": 700})
    config = parse_model_config(raw)
    monkeypatch.setattr("modelops.release.deploy.require_gate_passed", lambda *args: None)
    deploy_package(sagemaker, config, approved_package(sagemaker), env_name="production", timeout=5,
                   log=lambda line: None)
    [target], [policy] = registered("abalone-model")
    assert (target["MaxCapacity"], policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]) == (3, 700.0)
    rollout = config.deploy_environment("production").rollout
    assert guardrails.deployment_config(rollout, ["a"])["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR", "WaitIntervalInSeconds": 120, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}
    assert [a.threshold for a in guardrails.rollout_alarms("abalone-model", rollout.slo)] == [0, 500_000]


# -- distributed training ------------------------------------------------------------------------------------


TRAIN_ROWS = [f"{i}.5,{i},{i * 2}\n".encode() for i in range(10)]


@pytest.mark.slow  # moto end to end
def test_distributed_training_shards_the_train_split_one_object_per_instance(sagemaker):
    store = sagemaker.store
    spec = spec_for(store, instance_count=3)
    store.put_bytes(f"{spec.train_uri}train.csv", b"".join(TRAIN_ROWS))
    store.put_bytes(f"{spec.validation_uri}validation.csv", b"1,2,3\n")
    store.put_bytes(f"{spec.output_uri}/output/model.tar.gz", b"model bytes")
    lines = []
    sagemaker.trainer.train(spec, log=lines.append)

    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=spec.job_name)
    assert job["ResourceConfig"]["InstanceCount"] == 3
    shards = spec.train_uri.rstrip("/") + "-shards-3/"
    assert [(c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"],
             c["DataSource"]["S3DataSource"]["S3DataDistributionType"]) for c in job["InputDataConfig"]] == [
        ("train", shards, "ShardedByS3Key"), ("validation", spec.validation_uri, "FullyReplicated")]
    parts = store.list_objects(shards)
    assert [p.uri.rsplit("/", 1)[1] for p in parts] == [f"part-0000{i}-of-00003.csv" for i in range(3)]
    bodies = [store.get_bytes(p.uri) for p in parts]
    assert [len(b.splitlines()) for b in bodies] == [4, 3, 3] and b"".join(bodies) == b"".join(TRAIN_ROWS)
    assert store.exists(shards.rstrip("/") + ".json")  # the manifest: beside the prefix, never handed out as data
    assert f"train channel: 10 rows in 3 shards under {shards} (ShardedByS3Key, one per instance)" in lines

    again, second = [], spec_for(store, job="abalone-model-20261126-170000-cafe", instance_count=3)
    store.put_bytes(f"{second.output_uri}/output/model.tar.gz", b"model bytes")
    sagemaker.trainer.train(second, log=again.append)
    assert f"train channel: reusing 3 shards under {shards}" in again


@pytest.mark.slow  # moto
def test_more_instances_than_train_rows_is_a_config_error(sagemaker):
    store = sagemaker.store
    spec = spec_for(store, instance_count=11)
    store.put_bytes(f"{spec.train_uri}train.csv", b"".join(TRAIN_ROWS))
    with pytest.raises(ConfigError, match=r"training\.instance_count is 11, but the train split has 10 rows.*Fix: "
                                          r"lower training\.instance_count in model\.yml to at most 10"):
        sagemaker.trainer.train(spec, log=lambda line: None)
    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


@pytest.mark.slow  # moto
def test_a_single_instance_keeps_one_replicated_train_channel(sagemaker):
    from modelops.backends.sagemaker.trainer import training_job_request

    request = training_job_request(spec_for(sagemaker.store), "image", "role")
    assert {c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in request["InputDataConfig"]} == {
        "FullyReplicated"}


@pytest.mark.slow  # trains a sample in-process first
def test_the_local_backend_says_it_ignores_instance_count(tmp_path, monkeypatch):
    import copy

    import yaml

    from modelops.backends.local.trainer import LocalTrainer
    from modelops.backends.sagemaker.trainer import SageMakerTrainer
    from modelops.config import parse_model_config
    from modelops.training.train import train_model
    from tests.support.paths import ROOT

    assert (LocalTrainer.distributed, SageMakerTrainer.distributed) == (False, True)
    raw = copy.deepcopy(yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text()))
    raw["training"]["instance_count"] = 4
    config = parse_model_config(raw)
    trained = []
    backend = SimpleNamespace(name="local", store=SimpleNamespace(uri=lambda *parts: "/".join(parts)),
                              trainer=SimpleNamespace(distributed=False, train=lambda spec, log: trained.append(spec)))
    dataset = SimpleNamespace(feature_names=tuple("abcdefghij"), channel_uris={"train": "t/", "validation": "v/"})
    lines = []
    train_model(backend, config, dataset, log=lines.append)
    assert trained[0].instance_count == 4
    [line] = [line for line in lines if "instance_count" in line]
    assert line.endswith("training.instance_count 4 is ignored by the local backend: it trains on one process, on "
                         "all train rows (SageMaker trains on 4 instances, each on its shard)")
