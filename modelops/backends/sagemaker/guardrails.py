"""Production's guarded rollout and autoscaling on AWS: the requests built from model.yml, and who sends them.

A guarded update is SageMaker's deployment guardrails: UpdateEndpoint with a blue/green ``DeploymentConfig``
(canary or linear traffic shifting, a bake, auto-rollback on CloudWatch alarms this module keeps for the
endpoint). Autoscaling is Application Auto Scaling target tracking on ``SageMakerVariantInvocationsPerInstance``.
The request shapes follow botocore's service models (the tests send them through Stubber, which checks them) and
the SageMaker developer guide; docs/scaling.md says what could not be tested without AWS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelops.backends.sagemaker.aws import translated
from modelops.config import SLO, Autoscaling, Rollout
from modelops.entities import PRODUCTION_VARIANT
from modelops.errors import EndpointFailed

NAMESPACE = "AWS/SageMaker"
#: SageMaker publishes invocation metrics once a minute; a standard-resolution alarm cannot judge less.
ALARM_PERIOD_SECONDS = 60
#: MaximumExecutionTimeoutInSeconds allows this for the new fleet to come up, on top of the steps and the bake.
PROVISIONING_SECONDS = 1800
MIN_EXECUTION_SECONDS, MAX_EXECUTION_SECONDS = 600, 28800  # the API's range (botocore's model)
SCALING_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_POLICY = "modelops-invocations-per-instance"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
_ROUTING = {"all_at_once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}


@dataclass(frozen=True)
class Alarm:
    """One CloudWatch alarm on the endpoint's production variant that rolls a guarded update back when in ALARM."""

    endpoint: str
    metric: str  # Invocation5XXErrors | ModelLatency
    threshold: float  # in the metric's unit: a share of requests (5xx: 1 per failed request, else 0) or microseconds
    meaning: str

    @property
    def name(self) -> str:
        return f"modelops-{self.endpoint}-{self.metric}"

    def request(self) -> dict:
        """PutMetricAlarm's parameters.

        ``Average`` for both: it is a documented statistic of each metric (SageMaker lists Average, Sum, Min, Max
        and Sample Count for ModelLatency, Average and Sum for Invocation5XXErrors, whose average is the error
        rate). One breaching minute trips it; no data (no traffic) is not a breach.
        """
        return {"AlarmName": self.name, "AlarmDescription": f"modelops guarded rollout of {self.endpoint}: "
                                                            f"{self.meaning}",
                "Namespace": NAMESPACE, "MetricName": self.metric,
                "Dimensions": [{"Name": "EndpointName", "Value": self.endpoint},
                               {"Name": "VariantName", "Value": PRODUCTION_VARIANT}],
                "Statistic": "Average", "Period": ALARM_PERIOD_SECONDS, "EvaluationPeriods": 1,
                "DatapointsToAlarm": 1, "Threshold": float(self.threshold),
                "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching",
                "Tags": [{"Key": "modelops:endpoint", "Value": self.endpoint}]}


def rollout_alarms(endpoint: str, slo: SLO | None) -> list[Alarm]:
    """The alarms that guard ``endpoint``'s updates, thresholds from production's SLO.

    The 5xx alarm holds the variant's error rate to ``slo.error_rate`` (0: any 5xx in a minute trips it). The
    latency alarm exists when ``slo.p99_ms`` is set: ModelLatency (microseconds) averaged over a minute above the
    p99 budget. The SLO's p99 is what a client measures end to end; ModelLatency leaves out SageMaker's overhead
    and the network and its average is below its p99, so this alarm trips only on a version that is slow for
    most requests, never on a healthy version's tail.
    """
    slo = slo or SLO()
    alarms = [Alarm(endpoint, "Invocation5XXErrors", slo.error_rate,
                    f"5xx responses above {slo.error_rate:g} of requests")]
    if slo.p99_ms is not None:
        alarms.append(Alarm(endpoint, "ModelLatency", slo.p99_ms * 1000,
                            f"average model latency above the p99 SLO of {slo.p99_ms:g} ms"))
    return alarms


def is_guarded(rollout: Rollout | None) -> bool:
    """Whether an update shifts traffic in steps or bakes (else SageMaker's default blue/green, all at once)."""
    return rollout is not None and (rollout.strategy != "all_at_once" or rollout.bake_seconds > 0)


def traffic_steps(rollout: Rollout) -> int:
    """How many times the update waits ``interval_seconds`` with part of the traffic on the new fleet."""
    if rollout.strategy == "canary":
        return 1
    if rollout.strategy == "linear":
        return math.ceil(100 / rollout.traffic_percent) - 1
    return 0


def rollout_seconds(rollout: Rollout | None) -> int:
    """How much longer than a plain update a guarded one takes: its waits and its bake."""
    if not is_guarded(rollout):
        return 0
    return traffic_steps(rollout) * rollout.interval_seconds + rollout.bake_seconds


def deployment_config(rollout: Rollout, alarm_names: list[str]) -> dict:
    """UpdateEndpoint's ``DeploymentConfig`` for a guarded rollout (see ``is_guarded``).

    Canary and linear steps are ``CAPACITY_PERCENT`` of the new fleet, ``traffic_percent`` of it (model.yml keeps
    it whole and a canary at most 50%, as SageMaker requires); ``interval_seconds`` is each step's baking period
    and ``bake_seconds`` the final one before the old fleet is terminated. The timeout covers the steps, the bake
    and ``PROVISIONING_SECONDS`` for the new fleet.
    """
    routing: dict = {"Type": _ROUTING[rollout.strategy], "WaitIntervalInSeconds": rollout.interval_seconds}
    if rollout.strategy == "canary":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": int(rollout.traffic_percent)}
    elif rollout.strategy == "linear":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": int(rollout.traffic_percent)}
    timeout = PROVISIONING_SECONDS + rollout_seconds(rollout)
    return {"BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": rollout.bake_seconds,
                "MaximumExecutionTimeoutInSeconds": min(MAX_EXECUTION_SECONDS, max(MIN_EXECUTION_SECONDS, timeout))},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names]}}


def describe_rollout(rollout: Rollout) -> str:
    steps = "" if rollout.strategy == "all_at_once" else (
        f" {rollout.traffic_percent:g}% for {rollout.interval_seconds}s" if rollout.strategy == "canary"
        else f" {rollout.traffic_percent:g}% every {rollout.interval_seconds}s")
    return f"{rollout.strategy}{steps}, bake {rollout.bake_seconds}s"


class Alarms:
    """The endpoint's rollback alarms in CloudWatch, created or updated before each guarded update."""

    def __init__(self, cloudwatch_client):
        self.cloudwatch = cloudwatch_client

    def put(self, endpoint: str, slo: SLO | None, log) -> list[str]:
        """Create or update the alarms for ``slo`` (PutMetricAlarm overwrites), drop one the SLO no longer has.

        Returns:
            The alarm names, for ``AutoRollbackConfiguration``.
        """
        alarms = rollout_alarms(endpoint, slo)
        for alarm in alarms:
            with translated(EndpointFailed, f"creating CloudWatch alarm {alarm.name}",
                            "allow cloudwatch:PutMetricAlarm; nothing was switched"):
                self.cloudwatch.put_metric_alarm(**alarm.request())
            log(f"{endpoint}: alarm {alarm.name} ({alarm.meaning})")
        stale = {Alarm(endpoint, "ModelLatency", 0, "").name} - {alarm.name for alarm in alarms}
        self.delete(stale)
        return [alarm.name for alarm in alarms]

    def delete(self, names) -> None:
        """Delete those of ``names`` that exist (DeleteAlarms deletes none if one is missing)."""
        names = sorted(names)
        if not names:
            return
        with translated(EndpointFailed, f"deleting CloudWatch alarms {names}"):
            found = [a["AlarmName"] for a in self.cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]]
            if found:
                self.cloudwatch.delete_alarms(AlarmNames=found)

    def delete_for(self, endpoint: str) -> None:
        self.delete(alarm.name for alarm in rollout_alarms(endpoint, SLO(p99_ms=1)))


def resource_id(endpoint: str) -> str:
    """Application Auto Scaling's id of the endpoint's production variant."""
    return f"endpoint/{endpoint}/variant/{PRODUCTION_VARIANT}"


def scalable_target_request(endpoint: str, autoscaling: Autoscaling) -> dict:
    return {"ServiceNamespace": SCALING_NAMESPACE, "ResourceId": resource_id(endpoint),
            "ScalableDimension": SCALABLE_DIMENSION, "MinCapacity": autoscaling.min_instances,
            "MaxCapacity": autoscaling.max_instances}


def scaling_policy_request(endpoint: str, autoscaling: Autoscaling) -> dict:
    """Target tracking on invocations per instance per minute; cooldowns are Application Auto Scaling's defaults."""
    return {"PolicyName": SCALING_POLICY, "ServiceNamespace": SCALING_NAMESPACE, "ResourceId": resource_id(endpoint),
            "ScalableDimension": SCALABLE_DIMENSION, "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(autoscaling.target_invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC}}}


@dataclass(frozen=True)
class Registered:
    """What Application Auto Scaling holds for a variant: its bounds and our policy (None: none)."""

    min_instances: int
    max_instances: int
    policy: dict | None


class Scaling:
    """The production variant's registration with Application Auto Scaling."""

    def __init__(self, autoscaling_client):
        self.client = autoscaling_client

    def registered(self, endpoint: str) -> Registered | None:
        with translated(EndpointFailed, f"reading the autoscaling of {endpoint}"):
            targets = self.client.describe_scalable_targets(
                ServiceNamespace=SCALING_NAMESPACE, ResourceIds=[resource_id(endpoint)],
                ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
            if not targets:
                return None
            policies = self.client.describe_scaling_policies(
                ServiceNamespace=SCALING_NAMESPACE, ResourceId=resource_id(endpoint),
                ScalableDimension=SCALABLE_DIMENSION, PolicyNames=[SCALING_POLICY])["ScalingPolicies"]
        policy = None
        if policies:
            policy = {key: policies[0][key] for key in ("PolicyName", "ServiceNamespace", "ResourceId",
                                                       "ScalableDimension", "PolicyType",
                                                       "TargetTrackingScalingPolicyConfiguration")}
        return Registered(targets[0]["MinCapacity"], targets[0]["MaxCapacity"], policy)

    def apply(self, endpoint: str, autoscaling: Autoscaling | None, log) -> None:
        """Make the registration what model.yml says: bounds and target tracking, or none at all."""
        if autoscaling is None:
            if self.registered(endpoint) is not None:
                self.deregister(endpoint)
                log(f"{endpoint}: autoscaling removed (model.yml has none); the instance count stays where it is")
            return
        with translated(EndpointFailed, f"registering {endpoint} with Application Auto Scaling",
                        f"allow application-autoscaling:RegisterScalableTarget and PutScalingPolicy; {endpoint} "
                        f"serves, on a fixed instance count"):
            self.client.register_scalable_target(**scalable_target_request(endpoint, autoscaling))
            self.client.put_scaling_policy(**scaling_policy_request(endpoint, autoscaling))
        log(f"{endpoint}: autoscaling {autoscaling.min_instances}-{autoscaling.max_instances} instances, target "
            f"{autoscaling.target_invocations_per_instance} invocations per instance per minute")

    def restore(self, endpoint: str, registered: Registered | None) -> None:
        """Register again what ``registered`` recorded (after an instance type change needed it gone)."""
        if registered is None:
            return
        with translated(EndpointFailed, f"registering {endpoint} with Application Auto Scaling again",
                        "register it by deploying again"):
            self.client.register_scalable_target(
                ServiceNamespace=SCALING_NAMESPACE, ResourceId=resource_id(endpoint),
                ScalableDimension=SCALABLE_DIMENSION, MinCapacity=registered.min_instances,
                MaxCapacity=registered.max_instances)
            if registered.policy:
                self.client.put_scaling_policy(**registered.policy)

    def deregister(self, endpoint: str) -> None:
        """Delete our policy, then the target (as SageMaker's guide orders it before an instance type change)."""
        with translated(EndpointFailed, f"deregistering {endpoint} from Application Auto Scaling"):
            registered = self.registered(endpoint)
            if registered is None:
                return
            if registered.policy:
                self.client.delete_scaling_policy(PolicyName=SCALING_POLICY, ServiceNamespace=SCALING_NAMESPACE,
                                                  ResourceId=resource_id(endpoint),
                                                  ScalableDimension=SCALABLE_DIMENSION)
            self.client.deregister_scalable_target(ServiceNamespace=SCALING_NAMESPACE, ResourceId=resource_id(endpoint),
                                                   ScalableDimension=SCALABLE_DIMENSION)
