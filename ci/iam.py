"""Who may call what on AWS, written once: each CircleCI job's context and role, each role's grants, and the IAM
actions an API call needs.

``ci/circleci.py`` runs each job in the context ``JOB_ROLES`` names, ``ci/infra.py`` writes each role's policy in
``infra/aws.yml`` from ``GRANTS``, ``ci/aws.py`` simulates them (``ci aws check``), and
``tests/test_aws_policies.py`` records the calls each job makes on moto and checks them against ``GRANTS`` both
ways: a call no grant allows, and a grant no call needs, fail it. Giving a role one more action is one line in
``GRANTS`` (then ``python -m ci aws template`` rewrites ``infra/aws.yml``). ``BY_HAND`` is the same for the
commands people run with their own credentials (no role is granted them), proven by the same test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    """One IAM role the stack creates for CircleCI, and the context that names it."""

    key: str
    context: str
    logical_id: str  # its resource in infra/aws.yml; the stack's output ``<logical_id>Arn`` holds its ARN
    purpose: str


ROLES = {
    "train": Role("train", "modelops-train", "TrainRole",
                  "train, register and review on branches; monitor the endpoints on the schedule"),
    "release": Role("release", "modelops-release", "ReleaseRole",
                    "approve a version; deploy to staging and run the promotion gate on main"),
    "production": Role("production", "modelops-production", "ProductionRole",
                       "promote the package staging serves to production"),
}
#: The CircleCI job -> the role its context names (the generated config and the template both read this).
JOB_ROLES = {"train": "train", "monitor": "train", "approve": "release", "deploy": "release", "promote": "production"}


def job_context(job: str) -> str:
    """The CircleCI context the job runs in."""
    return ROLES[JOB_ROLES[job]].context


# -- resources, as CloudFormation Fn::Sub patterns; {model} stands for each model's name ----------------------

_SM = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
RESOURCES = {
    "bucket": "arn:${AWS::Partition}:s3:::${Bucket}",
    "objects": "arn:${AWS::Partition}:s3:::${Bucket}/${Prefix}/*",
    "groups": _SM + ":model-package-group/{model}",
    "packages": _SM + ":model-package/{model}/*",
    "training-jobs": _SM + ":training-job/{model}-*",
    "processing-jobs": _SM + ":processing-job/{model}-*",  # the gather's: <model>-gather-<time>-<hex>
    # Model Monitor's executions: SageMaker names their processing jobs model-monitoring-<time>-<hex>, not after
    # the model, so the monitor's reading them back cannot be scoped to one model.
    "monitoring-processing-jobs": _SM + ":processing-job/model-monitoring-*",
    "monitoring-schedules": _SM + ":monitoring-schedule/{model}-*",  # after its endpoint: <model>[-staging]-...
    "data-quality-definitions": _SM + ":data-quality-job-definition/{model}-*",
    "model-quality-definitions": _SM + ":model-quality-job-definition/{model}-*",
    "staging": _SM + ":endpoint/{model}-staging",
    "staging-configs": _SM + ":endpoint-config/{model}-staging-v*",
    "staging-models": _SM + ":model/{model}-staging-v*",
    "production": _SM + ":endpoint/{model}",
    "production-configs": _SM + ":endpoint-config/{model}-v*",
    "production-models": _SM + ":model/{model}-v*",
    "alarms": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:modelops-{model}-*",
    # Target tracking's alarms, which Application Auto Scaling creates and deletes with the caller's permissions.
    "scaling-alarms": ("arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:"
                       "alarm:TargetTracking-endpoint/{model}/variant/*"),
    "scalable-targets": ("arn:${AWS::Partition}:application-autoscaling:${AWS::Region}:${AWS::AccountId}:"
                         "scalable-target/*"),
    "training-logs": ("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                      "log-group:/aws/sagemaker/TrainingJobs:*"),
    "execution-role": "${ExecutionRole.Arn}",
    "scaling-role": ("arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/"
                     "sagemaker.application-autoscaling.amazonaws.com/"
                     "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"),
    # Actions that support no resource-level permission (List*, Describe* of Application Auto Scaling, ...).
    "any": "*",
}

#: Conditions beside a grant, by the resource kind they narrow.
CONDITIONS = {
    "execution-role": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    "scaling-role": {"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}},
    "bucket": {"StringLike": {"s3:prefix": ["${Prefix}/*"]}},
}

# -- what each role may do: one line per action, with the resources it may do it on --------------------------

_READ_OBJECTS = [("s3:GetObject", "objects"), ("s3:ListBucket", "bucket")]
_WRITE_OBJECTS = [("s3:PutObject", "objects")]
_HISTORY = [("sagemaker:ListTags", "groups", "staging", "production"),
            ("sagemaker:AddTags", "groups", "staging", "production")]
_READ_REGISTRY = [("sagemaker:DescribeModelPackageGroup", "groups"), ("sagemaker:ListModelPackages", "any"),
                  ("sagemaker:DescribeModelPackage", "packages")]


def _deploying(env: str) -> list[tuple[str, ...]]:
    """What deploying to ``env`` (staging or production) needs: its models, configs and endpoint, the answers."""
    return [("sagemaker:CreateModel", f"{env}-models"),
            ("sagemaker:CreateEndpointConfig", f"{env}-configs"),
            ("sagemaker:DescribeEndpointConfig", f"{env}-configs"),
            ("sagemaker:CreateEndpoint", env, f"{env}-configs"), ("sagemaker:UpdateEndpoint", env, f"{env}-configs"),
            ("sagemaker:DescribeEndpoint", "staging", "production"),
            ("sagemaker:AddTags", f"{env}-models", f"{env}-configs"),
            ("sagemaker:InvokeEndpoint", env), ("iam:PassRole", "execution-role"),
            ("application-autoscaling:DescribeScalableTargets", "any")]


#: ci monitor on the sagemaker backend: Model Monitor's one-time data-quality job, its files read back, and its
#: schedule and definition deleted.
_MONITORING = [("sagemaker:CreateDataQualityJobDefinition", "data-quality-definitions"),
               ("sagemaker:DeleteDataQualityJobDefinition", "data-quality-definitions"),
               ("sagemaker:CreateMonitoringSchedule", "monitoring-schedules"),
               ("sagemaker:DeleteMonitoringSchedule", "monitoring-schedules"),
               ("sagemaker:AddTags", "data-quality-definitions", "monitoring-schedules"),
               ("sagemaker:ListMonitoringExecutions", "any"),
               ("sagemaker:DescribeProcessingJob", "monitoring-processing-jobs"), ("iam:PassRole", "execution-role")]
#: What the endpoint serves: the endpoint, its config and model (modelops.served_model).
_SERVED = [("sagemaker:DescribeEndpoint", "staging", "production"),
           ("sagemaker:DescribeEndpointConfig", "staging-configs", "production-configs"),
           ("sagemaker:DescribeModel", "staging-models", "production-models")]


GRANTS: dict[str, list[tuple[str, ...]]] = {
    "train": [
        *_READ_OBJECTS, *_WRITE_OBJECTS, *_HISTORY, *_READ_REGISTRY,
        ("sagemaker:CreateTrainingJob", "training-jobs"), ("sagemaker:DescribeTrainingJob", "training-jobs"),
        ("sagemaker:StopTrainingJob", "training-jobs"), ("sagemaker:AddTags", "training-jobs"),
        ("logs:DescribeLogStreams", "training-logs"), ("logs:GetLogEvents", "training-logs"),
        ("sagemaker:CreateModelPackageGroup", "groups"), ("sagemaker:CreateModelPackage", "groups", "packages"),
        ("iam:PassRole", "execution-role"),
        # monitor: the endpoint, what it serves, its capture, Model Monitor's job on it
        *_SERVED, *_MONITORING,
        # train: the gather on a Processing job (model.yml's data.processing), stopped when it outlives its time
        ("sagemaker:CreateProcessingJob", "processing-jobs"), ("sagemaker:DescribeProcessingJob", "processing-jobs"),
        ("sagemaker:StopProcessingJob", "processing-jobs"), ("sagemaker:AddTags", "processing-jobs"),
    ],
    "release": [
        *_READ_OBJECTS, *_WRITE_OBJECTS, *_HISTORY, *_READ_REGISTRY,
        ("sagemaker:UpdateModelPackage", "packages"),
        *_deploying("staging"),
        # the gate, and what deploy reports as served: the package each endpoint serves, through its config and model
        ("sagemaker:DescribeEndpointConfig", "production-configs"),
        ("sagemaker:DescribeModel", "staging-models", "production-models"),
    ],
    "production": [
        *_READ_OBJECTS, *_WRITE_OBJECTS, *_HISTORY, *_READ_REGISTRY,
        *_deploying("production"),
        # the package staging serves, which promote deploys: its endpoint's config and model
        ("sagemaker:DescribeEndpointConfig", "staging-configs"), ("sagemaker:DescribeModel", "staging-models"),
        ("sagemaker:DescribeModel", "production-models"),  # what production serves before the promotion
        # the guarded rollout's alarms, production's autoscaling
        ("cloudwatch:PutMetricAlarm", "alarms", "scaling-alarms"),
        ("cloudwatch:DescribeAlarms", "alarms", "scaling-alarms"),
        ("cloudwatch:DeleteAlarms", "alarms", "scaling-alarms"),
        ("application-autoscaling:RegisterScalableTarget", "scalable-targets"),
        ("application-autoscaling:DeregisterScalableTarget", "scalable-targets"),
        ("application-autoscaling:PutScalingPolicy", "scalable-targets"),
        ("application-autoscaling:DescribeScalingPolicies", "any"),
        ("application-autoscaling:DeleteScalingPolicy", "scalable-targets"),
        ("sagemaker:UpdateEndpointWeightsAndCapacities", "production"), ("iam:CreateServiceLinkedRole", "scaling-role"),
    ],
}


#: What people run by hand, with their own credentials: no CircleCI job runs these ``ci monitor`` options (the
#: scheduled monitor job passes neither), so no role of the stack is granted them. The policy test proves each
#: list both ways, as it does the roles' (docs/aws.md lists them for whoever grants a person's permissions).
_BY_HAND_READS = [("s3:GetObject", "objects"), *_SERVED, _HISTORY[0], *_READ_REGISTRY[1:]]
BY_HAND: dict[str, list[tuple[str, ...]]] = {
    # Model Monitor's model-quality job beside the data-quality one, on a file of ground truth.
    "monitor --labels": [
        *_BY_HAND_READS, *_WRITE_OBJECTS, *_MONITORING,
        ("sagemaker:CreateModelQualityJobDefinition", "model-quality-definitions"),
        ("sagemaker:DeleteModelQualityJobDefinition", "model-quality-definitions"),
        ("sagemaker:AddTags", "model-quality-definitions"),
    ],
    # The endpoint's recurring data-quality schedule, created once and pointed at each new version's baseline.
    "monitor --schedule": [
        *_BY_HAND_READS, *_WRITE_OBJECTS,
        ("sagemaker:CreateDataQualityJobDefinition", "data-quality-definitions"),
        ("sagemaker:DescribeMonitoringSchedule", "monitoring-schedules"),
        ("sagemaker:CreateMonitoringSchedule", "monitoring-schedules"),
        ("sagemaker:UpdateMonitoringSchedule", "monitoring-schedules"),
        ("sagemaker:AddTags", "data-quality-definitions", "monitoring-schedules"),
        ("iam:PassRole", "execution-role"),
    ],
}


def role_actions(role: str) -> dict[str, list[str]]:
    """Each action ``role`` (a key of GRANTS, or of BY_HAND) is granted -> the resource kinds it is granted on
    (grants of one action merged)."""
    merged: dict[str, list[str]] = {}
    for action, *kinds in (GRANTS[role] if role in GRANTS else BY_HAND[role]):
        merged.setdefault(action, [])
        merged[action] += [kind for kind in kinds if kind not in merged[action]]
    return merged


# -- an API call -> the IAM actions it needs ------------------------------------------------------------------

#: botocore's service name -> IAM's action prefix (the signing name differs for some: CloudWatch signs as
#: "monitoring", the runtime as "sagemaker").
SERVICE_PREFIX = {"s3": "s3", "sagemaker": "sagemaker", "sagemaker-runtime": "sagemaker", "sts": "sts", "iam": "iam",
                  "cloudwatch": "cloudwatch", "application-autoscaling": "application-autoscaling", "logs": "logs"}
#: S3 operations whose IAM action is not their own name (AWS's "Actions, resources, and condition keys for Amazon
#: S3" and the S3 API reference's Permissions sections).
S3_ACTIONS = {
    "HeadObject": ("s3:GetObject",), "HeadBucket": ("s3:ListBucket",), "ListObjects": ("s3:ListBucket",),
    "ListObjectsV2": ("s3:ListBucket",), "ListObjectVersions": ("s3:ListBucketVersions",),
    "CopyObject": ("s3:GetObject", "s3:PutObject"), "UploadPartCopy": ("s3:GetObject", "s3:PutObject"),
    "CreateMultipartUpload": ("s3:PutObject",), "UploadPart": ("s3:PutObject",),
    "CompleteMultipartUpload": ("s3:PutObject",), "DeleteObjects": ("s3:DeleteObject",),
    "ListParts": ("s3:ListMultipartUploadParts",),
}
#: Operations for which AWS checks more of the caller's permissions than the operation's own action: SageMaker's
#: Create* with a RoleArn/ExecutionRoleArn (iam:PassRole); Application Auto Scaling acting on the endpoint as the
#: caller ("Auto scaling prerequisites", SageMaker developer guide: the first registration creates the
#: service-linked role; registering reads and scales the variant).
IMPLIED = {
    ("application-autoscaling", "RegisterScalableTarget"): (
        "iam:CreateServiceLinkedRole", "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
        "sagemaker:UpdateEndpointWeightsAndCapacities"),
    ("application-autoscaling", "PutScalingPolicy"): ("cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"),
    ("application-autoscaling", "DeleteScalingPolicy"): ("cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"),
}
#: Allowed to every principal, whatever its policies say.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
_PASSES_ROLE = ("RoleArn", "ExecutionRoleArn")


def iam_actions(service: str, operation: str, params: dict | None = None) -> tuple[str, ...]:
    """The IAM actions a call of ``operation`` (botocore's service name, the API's operation name) needs.

    Raises:
        KeyError: a service this table does not know (add its IAM prefix to SERVICE_PREFIX).
    """
    params = params or {}
    prefix = SERVICE_PREFIX[service]
    actions = list(S3_ACTIONS.get(operation, ())) if service == "s3" else []
    actions = actions or [f"{prefix}:{operation}"]
    if service == "s3" and operation == "PutObject" and params.get("Tagging"):
        actions.append("s3:PutObjectTagging")
    if service == "sagemaker" and operation.startswith("Create"):
        if params.get("Tags"):
            actions.append("sagemaker:AddTags")  # tagging on create is authorised as AddTags too
        if any(params.get(key) for key in _PASSES_ROLE):
            actions.append("iam:PassRole")
    actions += IMPLIED.get((service, operation), ())
    return tuple(dict.fromkeys(actions))
