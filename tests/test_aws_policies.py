"""Least privilege, proven: every AWS call each CircleCI job makes, recorded on moto, against its role's policy.

The test drives each job's flow itself (so it holds on any pytest-xdist worker, whatever ran before): the calls
the job's notebooks and command make into ``modelops``, in their order, on the sagemaker backend on moto, twice
over (a first version, then a second against a champion, a live staging endpoint and a production rollout with
alarms and autoscaling). ``tests.support.aws.recording_calls`` records every call of the backend's own clients
(moto, Stubber and stand-in answered alike), ``ci.iam.iam_actions`` maps each to its IAM actions, and
``ci.iam.JOB_ROLES`` says whose policy must allow it. It fails on a call the role's ``ci.iam.GRANTS`` lack, and
on a grant no job of the role needs. A quick test keeps the drivers honest: each makes every call into
``modelops`` its job's notebooks make (the calls of the runner itself, such as the freshness checks that decide
whether a notebook is reused, are reads of what the drivers read too, but are not recorded here).

Not run here, so granted to no CircleCI role: ``ci tune``, ``ci transform``, ``ci rollback``, ``ci stop`` (a
person runs them with their own credentials; docs/aws.md lists what they call).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections import defaultdict

import numpy as np
import pytest
import yaml

import modelops
from ci.iam import ALWAYS_ALLOWED, GRANTS, JOB_ROLES, iam_actions, role_actions
from modelops.config import PRODUCTION, STAGING, parse_model_config
from tests.support.paths import ROOT, SHARED_DATA

#: The notebooks each CircleCI job executes (ci/stages.py), whose calls into modelops the drivers below make.
JOB_NOTEBOOKS = {"train": ["gather_data", "train_register", "review"], "deploy": ["deploy", "gate"],
                 "promote": ["deploy"], "monitor": ["monitor"], "approve": []}
#: Facade calls of the notebooks that make no AWS call (configuration, figures, the record glued).
NO_AWS = {"load_model_config", "get_backend", "glue_record", "glue_figure", "glue_figures", "check_gate",
          "DeployRecord.of"}


def _config(*, scaled: bool = True):
    """abalone as model.yml has it, and production guarded (rollout alarms on a p99 SLO) and autoscaled; or, not
    ``scaled``, its SLO without a p99 and no autoscaling (so a deploy removes the latency alarm and the
    registration the earlier ones made)."""
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    production = raw["environments"]["production"]
    production["rollout"] = {"strategy": "linear", "traffic_percent": 50, "interval_seconds": 120, "bake_seconds": 300}
    if scaled:
        production["autoscaling"] = {"min_instances": 1, "max_instances": 3, "target_invocations_per_instance": 700}
    else:
        production["slo"].pop("p99_ms")
    return dataclasses.replace(parse_model_config(raw), folder=ROOT / "abalone_model")


def quiet(*args, **kwargs):
    return None


# -- each job, as its notebooks and command call modelops ----------------------------------------------------


def train_job(ops, config):
    """ci run MODEL --stage train: gather_data, train_register, review."""
    raw = modelops.fetch_data(config)
    prepared = modelops.prepare_data(modelops.read_raw(raw.path, config.data), config)
    modelops.write_dataset(ops.store, config, raw, modelops.split_frame(prepared.frame, config.split),
                           prepared=prepared)
    data = modelops.load_dataset(ops.store, config)
    training = modelops.train_model(ops, config, data, log=quiet)
    candidate = modelops.Candidate.evaluate(ops, config, data, training)
    baseline = modelops.write_baseline(ops, config, data, training)
    candidate.record_evaluation()
    package = candidate.register(notebook_artifact="abalone_model/train_register.html", baseline=baseline)
    modelops.review_model(ops, config)
    return package


def timed_out_train_job(ops, config):
    """ci run MODEL --stage train when the training job outlives its time: the trainer stops it."""
    from modelops.errors import TrainingFailed
    from tests.support.aws import answer

    events = ops.trainer.sagemaker.meta.events
    events.register("before-call.sagemaker.StopTrainingJob", lambda **kwargs: answer({}))  # moto lacks it
    ops.trainer.timeout_seconds = 1e-9
    try:
        with pytest.raises(TrainingFailed, match="it was asked to stop"):
            train_job(ops, config)
    finally:
        ops.trainer.timeout_seconds = None


def approve_job(ops, config, version: int):
    """ci approve MODEL --version N --by ..."""
    package = ops.registry.get(config.name, version)
    ops.registry.approve(config.name, package.version, by="alice", note="approved in CircleCI")


def _deploy_notebook(ops, config, env_name: str, version: int | None = None):
    package = modelops.select_package(ops.registry, config, version=version)
    modelops.deploy_package(ops, config, package, env_name=env_name, by="bob", timeout=5, log=quiet)
    modelops.verify_endpoint(ops, config, package, env_name)
    modelops.measure_latency(ops, config, package, env_name=env_name, calls=3)


def deploy_job(ops, config):
    """ci deploy MODEL --env staging: the deploy notebook for staging, then the gate notebook."""
    _deploy_notebook(ops, config, STAGING)
    gate = modelops.run_gate(ops, config, by="bob", log=quiet)
    modelops.check_gate(gate)


def promote_job(ops, config):
    """ci promote MODEL: the package staging serves, its gate checked, through the deploy notebook for production."""
    from modelops.release.deploy import require_gate_passed
    from modelops.release.gate import staged_package

    package = staged_package(ops, config)
    require_gate_passed(ops, config, package)
    _deploy_notebook(ops, config, PRODUCTION, version=package.version)


def monitor_job(ops, config):
    """ci monitor MODEL --since 24h: the monitor notebook."""
    served = modelops.served_model(ops, config)
    captured = modelops.read_capture(ops, config, served, since="24h")
    report = modelops.check_traffic(config, served, captured)
    quality = modelops.live_quality(config, captured, None)
    modelops.record_monitoring(ops, config, served, captured, report, quality)


def _capture(ops, config):
    """What SageMaker's data capture would have written for some production traffic (not the backend's call)."""
    from tests.support.monitoring import capture_lines, write_capture

    data = modelops.load_dataset(ops.store, config)
    features = modelops.read_split(ops.store, data, "test").iloc[:40, 1:].to_numpy(dtype=float)
    lines, _ = capture_lines(features, answers=np.full(len(features), 9.5))
    write_capture(ops.store, lines, endpoint=config.name, model=config.name)


def test_each_jobs_driver_makes_every_call_into_modelops_its_notebooks_make():
    import inspect
    import json
    import re

    drivers = {"train": [train_job], "deploy": [deploy_job, _deploy_notebook], "promote": [promote_job,
               _deploy_notebook], "monitor": [monitor_job], "approve": [approve_job]}
    assert set(drivers) == set(JOB_ROLES) == set(JOB_NOTEBOOKS)
    for job, notebooks in JOB_NOTEBOOKS.items():
        driven = "".join(inspect.getsource(driver) for driver in drivers[job])
        for name in notebooks:
            path = ROOT / "notebooks" / ("review.ipynb" if name == "review" else f"templates/{name}.ipynb")
            code = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                           if c["cell_type"] == "code")
            called = set(re.findall(r"\bmodelops\.([A-Za-z_.]+)\(", code)) - NO_AWS
            assert called and not {c for c in called if f"modelops.{c}(" not in driven}, (job, name, called)


@pytest.fixture
def recorded():
    """Every job on one moto account, (job, service, operation, params) of every backend call: a first version
    through to production and monitored; a second, reviewed against the first as champion, replacing it on a live
    staging endpoint and, through a guarded rollout, in production; a third after a training job that timed out,
    with production's autoscaling and latency alarm removed from model.yml."""
    from moto import mock_aws

    from tests.support.aws import CREDENTIALS, recording_calls, sagemaker_on_moto
    from tests.support.container import XGBoostContainer
    from tests.support.hosting import SageMakerHosting

    patch = pytest.MonkeyPatch()
    for name, value in {**CREDENTIALS, "MODELOPS_DATA_DIR": str(SHARED_DATA),
                        "CIRCLE_BUILD_URL": "https://circleci.com/gh/o/r/1"}.items():
        patch.setenv(name, value)
    try:
        with mock_aws(), recording_calls() as recorder:
            ops = sagemaker_on_moto()
            XGBoostContainer(ops.trainer.sagemaker)
            SageMakerHosting(ops.endpoints)
            # The SDK's image lookup makes no AWS call; answered here so the SDK (seconds to import) stays out.
            patch.setattr("modelops.backends.sagemaker.SageMakerBackend.image_uri",
                          lambda self, version: f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:"
                                            f"{version}")
            for config in (_config(), _config(), _config(scaled=False)):
                recorder.job = "train"
                if not config.deploy_environment(PRODUCTION).autoscaling:
                    timed_out_train_job(ops, config)
                package = train_job(ops, config)
                recorder.job = "approve"
                approve_job(ops, config, package.version)
                recorder.job = "deploy"
                deploy_job(ops, config)
                recorder.job = "promote"
                promote_job(ops, config)
                recorder.job = None
                _capture(ops, config)
                recorder.job = "monitor"
                monitor_job(ops, config)
            recorder.job = None
    finally:
        patch.undo()
    return recorder.calls


# -- which resource a call acts on, for its action, as IAM names it --------------------------------------------

ACCOUNT, REGION = "123456789012", "us-east-1"
_SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
#: A SageMaker request parameter -> the ARN of what it names.
_NAMED = {"EndpointName": f"{_SM}:endpoint/{{}}", "EndpointConfigName": f"{_SM}:endpoint-config/{{}}",
          "ModelName": f"{_SM}:model/{{}}", "TrainingJobName": f"{_SM}:training-job/{{}}",
          "ModelPackageGroupName": f"{_SM}:model-package-group/{{}}"}


def acted_on(action: str, service: str, params: dict) -> list[str] | None:
    """The resources ``action`` of this call is authorised on (None: a call on no resource, like List*)."""
    prefix = action.split(":")[0]
    if action == "iam:PassRole":
        return [params.get("RoleArn") or params["ExecutionRoleArn"]]
    if action == "iam:CreateServiceLinkedRole":
        return [f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                f"AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"]
    if prefix == "s3":
        if action in ("s3:ListBucket", "s3:ListBucketVersions"):
            return [f"arn:aws:s3:::{params['Bucket']}"]
        if action == "s3:GetObject" and "CopySource" in params:
            source = params["CopySource"]
            return [f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"]
        return [f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"]
    if prefix == "sagemaker" and service == "application-autoscaling":  # AWS checks the endpoint as the caller
        if action == "sagemaker:DescribeEndpointConfig":
            return None  # the config the endpoint serves, which the call does not name
        return [f"{_SM}:endpoint/{params['ResourceId'].split('/')[1]}"]
    if prefix == "sagemaker":
        if "ResourceArn" in params:
            return [params["ResourceArn"]]
        if action == "sagemaker:ListModelPackages":
            return None  # a List action, on no resource
        name = params.get("ModelPackageName") or params.get("ModelPackageArn") or ""
        if name.startswith("arn:"):
            return [name]
        for key, pattern in _NAMED.items():  # the first one the call names is what it acts on
            if key in params:
                return [pattern.format(params[key].lower())]
        return None
    if prefix == "cloudwatch" and service == "application-autoscaling":  # target tracking's own alarms
        return [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:TargetTracking-{params['ResourceId']}-AlarmHigh-"
                f"0123abcd-4567-89ef-0123-456789abcdef"]
    if prefix == "cloudwatch":
        names = params.get("AlarmNames") or [params["AlarmName"]]
        return [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}" for name in names]
    if prefix == "logs":
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{params['logGroupName']}"
        return [f"{group}:log-stream:{params['logStreamName']}" if "logStreamName" in params else f"{group}:*"]
    return None  # application-autoscaling: scalable targets are named by an id AWS assigns


def _granted_patterns(role: str, action: str) -> list[str]:
    """The role's resource patterns for ``action``, resolved for the moto account (the test's model only)."""
    from ci.iam import RESOURCES
    from tests.support.aws import MOTO_BUCKET, MOTO_ROLE

    values = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "Bucket": MOTO_BUCKET,
              "Prefix": "modelops", "ExecutionRole.Arn": MOTO_ROLE}
    return [re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], RESOURCES[kind].replace("{model}", "abalone-model"))
            for kind in role_actions(role)[action]]


def _needed(calls) -> dict[str, dict[str, set[str]]]:
    """role -> IAM action -> the calls ("job: service.Operation") that need it."""
    needed: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for job, service, operation, params in calls:
        for action in iam_actions(service, operation, params):
            if action not in ALWAYS_ALLOWED:
                needed[JOB_ROLES[job]][action].add(f"{job}: {service}.{operation}")
    return needed


@pytest.mark.slow  # every job's flow on moto: about 35 s
def test_every_call_of_every_job_is_allowed_to_its_role_on_its_resources_and_every_grant_is_used(recorded):
    # One test, not several over a shared fixture: pytest-xdist could run them on different workers, each driving
    # the flows again.
    assert {job for job, *_ in recorded} == set(JOB_ROLES)
    needed = _needed(recorded)
    missing = {role: {action: sorted(calls) for action, calls in actions.items() if action not in role_actions(role)}
               for role, actions in needed.items()}
    assert not {role: m for role, m in missing.items() if m}, (
        f"calls the role's policy does not allow (add a line to ci.iam.GRANTS): {missing}")
    unused = {role: sorted(set(role_actions(role)) - set(needed.get(role, {}))) for role in GRANTS}
    assert not {role: u for role, u in unused.items() if u}, (
        f"granted but never called (remove from ci.iam.GRANTS): {unused}")
    _check_resources(recorded)


def _check_resources(recorded) -> None:
    """Every call acts on a resource its role's grant of that action names."""
    outside, unnamed = set(), set()
    for job, service, operation, params in recorded:
        role = JOB_ROLES[job]
        for action in iam_actions(service, operation, params):
            if action in ALWAYS_ALLOWED:
                continue
            resources = acted_on(action, service, params)
            if resources is None:
                unnamed.add(action)
                continue
            patterns = _granted_patterns(role, action)
            for resource in resources:
                if not any(fnmatch.fnmatchcase(resource, pattern.replace("[", "[[]")) for pattern in patterns):
                    outside.add(f"{job}: {service}.{operation} -> {action} on {resource} (granted {patterns})")
            if action == "s3:ListBucket":
                assert params.get("Prefix", "").startswith("modelops/"), (job, operation, params)  # s3:prefix
    assert not outside, "calls on resources the role's grant does not name (fix ci.iam.RESOURCES):\n" + "\n".join(
        sorted(outside))
    # What the recording cannot name a resource for: the account-wide List/Describe calls, Application Auto
    # Scaling's own (scalable targets are named by ids AWS assigns) and the endpoint config it reads.
    assert unnamed == {"sagemaker:ListModelPackages", "sagemaker:DescribeEndpointConfig",
                       *(f"application-autoscaling:{operation}" for operation in (
                           "DescribeScalableTargets", "DescribeScalingPolicies", "RegisterScalableTarget",
                           "PutScalingPolicy", "DeleteScalingPolicy", "DeregisterScalableTarget"))}
