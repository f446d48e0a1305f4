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

The gather on a Processing job (model.yml's data.processing) is driven as the runner runs it (ci.remote): the CI
job's calls are the train role's, and the notebook's calls inside the job, the execution role's (checked against
its policy in the template). Model Monitor's operations, which moto lacks, are answered by the Stubber of
tests/support/model_monitor.py; the recorder sees them all the same. Each job starts with what the backend
remembers forgotten, as a new CircleCI process does (the endpoint config -> package lookups are made again).

What people run by hand is driven too, and checked against ``ci.iam.BY_HAND`` both ways: ``ci monitor --labels``
(Model Monitor's model-quality job) and ``ci monitor --schedule`` (no CircleCI job passes either). Not run here,
so granted to no CircleCI role and listed nowhere: ``ci tune``, ``ci transform``, ``ci rollback``, ``ci stop`` (a
person runs them with their own credentials; docs/aws.md says what they call).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import pytest
import yaml

import modelops
from ci.iam import ALWAYS_ALLOWED, BY_HAND, GRANTS, JOB_ROLES, iam_actions, role_actions
from modelops.config import PRODUCTION, STAGING, parse_model_config
from tests.support.model_monitor import ANALYZER_IMAGE
from tests.support.paths import ROOT, SHARED_DATA

#: The notebooks each CircleCI job executes (ci/stages.py), whose calls into modelops the drivers below make.
JOB_NOTEBOOKS = {"train": ["gather_data", "train_register", "review"], "deploy": ["deploy", "gate"],
                 "promote": ["deploy"], "monitor": ["monitor"], "approve": []}
#: Facade calls of the notebooks that make no AWS call (configuration, figures, the record glued).
NO_AWS = {"load_model_config", "get_backend", "glue_record", "glue_figure", "glue_figures", "check_gate",
          "DeployRecord.of"}


#: The gather's image (model.yml's data.processing.image_uri), as the project pushes it (infra/processing/).
PROCESSING_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops-processing:1"
#: Who makes the calls of the notebook inside the gather's Processing job: SageMaker's execution role.
INSIDE_PROCESSING = "gather, inside its Processing job"


def _raw(*, processing: bool = False) -> dict:
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    if processing:
        raw["data"]["processing"] = {"instance_type": "ml.m5.4xlarge", "image_uri": PROCESSING_IMAGE}
    return raw


def _config(*, scaled: bool = True, processing: bool = False):
    """abalone as model.yml has it, and production guarded (rollout alarms on a p99 SLO) and autoscaled; or, not
    ``scaled``, its SLO without a p99 and no autoscaling (so a deploy removes the latency alarm and the
    registration the earlier ones made); with ``processing``, gathered in a SageMaker Processing job."""
    raw = _raw(processing=processing)
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


def gather_notebook(ops, config):
    """The gather_data notebook: in the CI job, or (data.processing) inside the Processing job."""
    raw = modelops.fetch_data(config)
    modelops.gather_dataset(ops.store, config, raw)


def gather_on_processing(ops, config, folder):
    """The runner's gather when model.yml has data.processing (ci.remote): the CI job uploads the code, starts the
    Processing job, waits for it and fetches the executed notebook; the notebook's own calls are made inside the
    job, as SageMaker's execution role (moto runs nothing: the notebook's calls are made here, when moto has
    created the job, under INSIDE_PROCESSING)."""
    from ci.artifacts import Artifacts
    from ci.freshness import StageContext
    from ci.remote import run_on_processing
    from ci.runner import Step
    from ci.stages import NOTEBOOKS
    from tests.support.aws import CallRecorder

    recorder: CallRecorder = ops.recorder

    def inside(**kwargs):
        job, recorder.job = recorder.job, INSIDE_PROCESSING
        try:
            gather_notebook(ops, config)
        finally:
            recorder.job = job

    events = ops.processor.sagemaker.meta.events
    events.register("after-call.sagemaker.CreateProcessingJob", inside, unique_id="policy-inside-processing")
    try:
        step = Step(NOTEBOOKS["gather_data"], folder.path / "gather_data.ipynb", folder.path)
        ctx = StageContext(folder, "gather", "sagemaker", ops, Artifacts(folder.path / "artifacts"), {}, runs=[])
        return run_on_processing(ctx, step, {}, folder.path / "gather_data.executed.ipynb")
    finally:
        events.unregister("after-call.sagemaker.CreateProcessingJob", unique_id="policy-inside-processing")


def timed_out_gather(ops, config, folder):
    """The gather's Processing job outliving its time: the CI job stops it."""
    from modelops.errors import ProcessingFailed
    from tests.support.aws import answer

    events = ops.processor.sagemaker.meta.events
    running = {"ProcessingJobName": "x", "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:"
               "processing-job/x", "ProcessingResources": {"ClusterConfig": {
                   "InstanceCount": 1, "InstanceType": "ml.m5.4xlarge", "VolumeSizeInGB": 30}},
               "AppSpecification": {"ImageUri": PROCESSING_IMAGE}, "CreationTime": 0,
               "ProcessingJobStatus": "InProgress"}
    still_running = lambda **kwargs: answer(running)  # noqa: E731
    events.register("before-call.sagemaker.DescribeProcessingJob", still_running, unique_id="policy-running")
    try:
        with out_of_time(ops.processor, ProcessingFailed):
            gather_on_processing(ops, config, folder)
    finally:
        events.unregister("before-call.sagemaker.DescribeProcessingJob", unique_id="policy-running")


def train_job(ops, config, folder=None):
    """ci run MODEL --stage train: gather_data (in a Processing job when model.yml has data.processing, from
    ``folder``), train_register, review."""
    if config.data.processing is None:
        gather_notebook(ops, config)
    else:
        gather_on_processing(ops, config, folder)
    data = modelops.load_dataset(ops.store, config)
    training = modelops.train_model(ops, config, data, log=quiet)
    candidate = modelops.Candidate.evaluate(ops, config, data, training)
    baseline = modelops.write_baseline(ops, config, data, training)
    candidate.record_evaluation()
    package = candidate.register(notebook_artifact="abalone_model/train_register.html", baseline=baseline)
    modelops.review_model(ops, config)
    return package


def timed_out_train_job(ops, config, folder=None):
    """ci run MODEL --stage train when the training job outlives its time: the trainer stops it."""
    from modelops.errors import TrainingFailed
    from tests.support.aws import answer

    events = ops.trainer.sagemaker.meta.events
    events.register("before-call.sagemaker.StopTrainingJob", lambda **kwargs: answer({}))  # moto lacks it
    with out_of_time(ops.trainer, TrainingFailed):
        train_job(ops, config, folder)


@contextmanager
def out_of_time(waiter, error):
    """``waiter``'s job outlives its time at once: the code asks it to stop and raises ``error``."""
    waiter.timeout_seconds = 1e-9
    try:
        with pytest.raises(error, match="it was asked to stop"):
            yield
    finally:
        waiter.timeout_seconds = None


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


def monitor_job(ops, config, *, labels=None, engine=None):
    """ci monitor MODEL --since 24h: the monitor notebook. On sagemaker, Model Monitor's one-time data-quality job
    (and with ``labels`` its model-quality job), or with ``engine`` "notebook" the capture read in the kernel."""
    served = modelops.served_model(ops, config, endpoint=None, version=None)
    checked = modelops.check_window(ops, config, served, since="24h", until=None, labels=labels, engine=engine)
    modelops.record_monitoring(ops, config, served, checked.captured, checked.report, checked.quality)


def on_model_monitor(ops, config, *, labels=None):
    """monitor_job with Model Monitor's operations answered by a Stubber (moto has none), its reports in S3."""
    from modelops.monitoring.analyzer import analyzer_baseline
    from tests.support.model_monitor import ModelMonitorStub

    recorder, ops.recorder.job = ops.recorder.job, None  # writing what Model Monitor would have: not the job's
    served = modelops.served_model(ops, config)
    reports = ops.store.uri(config.name, "model-monitor", served.endpoint, "reports", "run")
    # A window like the training data: the baseline's own statistics, no violation.
    ops.store.put_bytes(f"{reports}/statistics.json", json.dumps(analyzer_baseline(config, served)[0]).encode())
    ops.store.put_bytes(f"{reports}/constraint_violations.json", b'{"violations": []}')
    ops.store.put_bytes(f"{reports}-quality/statistics.json", json.dumps({
        "version": 0.0, "dataset": {"item_count": 2},
        "regression_metrics": {"rmse": {"value": 2.1, "standard_deviation": 0.1},
                               "r2": {"value": 0.52, "standard_deviation": 0.01}}}).encode())
    ops.recorder.job = recorder
    ops.endpoints._packages.clear()  # the job reads what the endpoint serves itself
    stub = ModelMonitorStub(ops)
    stub.one_time_job(output=reports, status="Completed")
    if labels:
        stub.one_time_job("ModelQuality", output=f"{reports}-quality", status="Completed")
    with stub.stub:
        monitor_job(ops, config, labels=labels)
        stub.stub.assert_no_pending_responses()


def schedule_by_hand(ops, config):
    """ci monitor MODEL --backend sagemaker --schedule hourly, then daily (ci.monitor_command.schedule_monitoring):
    the schedule created, then pointed at a new definition."""
    from tests.support.model_monitor import ModelMonitorStub

    served = modelops.served_model(ops, config, endpoint=None, version=None)
    stub = ModelMonitorStub(ops)
    stub.schedule(exists=False, name=f"{served.endpoint}-data-quality")
    stub.schedule(exists=True, name=f"{served.endpoint}-data-quality")
    with stub.stub:
        ops.model_monitor.schedule(config, served, "hourly", log=quiet)
        ops.model_monitor.schedule(config, served, "daily", log=quiet)
        stub.stub.assert_no_pending_responses()


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

    drivers = {"train": [train_job, gather_notebook], "deploy": [deploy_job, _deploy_notebook], "promote": [promote_job,
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
def recorded(tmp_path):
    """Every job on one moto account, (job, service, operation, params) of every backend call: a first version
    through to production and monitored (Model Monitor's job, and the capture read in the kernel); a second,
    gathered in a Processing job, reviewed against the first as champion, replacing it on a live staging endpoint
    and, through a guarded rollout, in production; a third after a Processing job and a training job that timed
    out, with production's autoscaling and latency alarm removed from model.yml. And what people run by hand:
    the monitor with labels (Model Monitor's model-quality job), and its recurring schedule."""
    from moto import mock_aws

    from ci.models import ModelFolder
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
            patch.setattr("modelops.backends.sagemaker.model_monitor.analyzer_image", lambda region: ANALYZER_IMAGE)
            ops.recorder = recorder
            folder = ModelFolder(tmp_path / "abalone_model")  # model.yml with data.processing, as ci.remote reads it
            folder.path.mkdir()
            (folder.path / "model.yml").write_text(yaml.safe_dump(_raw(processing=True)))
            labels = tmp_path / "labels.csv"
            labels.write_text("event_id,label\nevent-000000,9\nevent-000001,11\n")
            def new_job(job: str | None) -> None:
                """Each CircleCI job and command is a new process: what the backend remembers goes."""
                recorder.job = job
                ops.endpoints._packages.clear()

            for config in (_config(), _config(processing=True), _config(scaled=False, processing=True)):
                new_job("train")
                if not config.deploy_environment(PRODUCTION).autoscaling:
                    timed_out_gather(ops, config, folder)
                    timed_out_train_job(ops, config, folder)
                package = train_job(ops, config, folder)
                new_job("approve")
                approve_job(ops, config, package.version)
                new_job("deploy")
                deploy_job(ops, config)
                new_job("promote")
                promote_job(ops, config)
                new_job(None)
                _capture(ops, config)
                new_job("monitor")
                on_model_monitor(ops, config)
                if config.data.processing is None:
                    monitor_job(ops, config, engine="notebook")  # the notebook's other engine: reads only
                new_job("monitor --labels")
                on_model_monitor(ops, config, labels=str(labels))
                new_job("monitor --schedule")
                schedule_by_hand(ops, config)
            new_job(None)
    finally:
        patch.undo()
    return recorder.calls


# -- which resource a call acts on, for its action, as IAM names it --------------------------------------------

ACCOUNT, REGION = "123456789012", "us-east-1"
_SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
#: A SageMaker request parameter -> the ARN of what it names.
_NAMED = {"EndpointName": f"{_SM}:endpoint/{{}}", "EndpointConfigName": f"{_SM}:endpoint-config/{{}}",
          "ModelName": f"{_SM}:model/{{}}", "TrainingJobName": f"{_SM}:training-job/{{}}",
          "ModelPackageGroupName": f"{_SM}:model-package-group/{{}}",
          "ProcessingJobName": f"{_SM}:processing-job/{{}}",
          "MonitoringScheduleName": f"{_SM}:monitoring-schedule/{{}}"}
#: A job definition's ARN, by the operation's kind of monitoring.
_DEFINITIONS = {"DataQuality": f"{_SM}:data-quality-job-definition/{{}}",
                "ModelQuality": f"{_SM}:model-quality-job-definition/{{}}"}


def acted_on(action: str, service: str, params: dict, operation: str = "") -> list[str] | None:
    """The resources ``action`` of this call (of ``operation``) is authorised on (None: a call on no resource, like
    List*)."""
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
        if action.startswith("sagemaker:List"):
            return None  # a List action, on no resource (ListModelPackages, ListMonitoringExecutions)
        if "JobDefinitionName" in params:
            kind = next(kind for kind in _DEFINITIONS if kind in operation)
            return [_DEFINITIONS[kind].format(params["JobDefinitionName"].lower())]
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


#: Whose policy allows each recorded job's calls: a CircleCI job's role, a by-hand command's list (ci.iam.BY_HAND),
#: or, for the notebook inside the gather's Processing job, SageMaker's execution role (infra/aws.yml).
EXECUTION = "execution role"
ROLE_OF = {**JOB_ROLES, **{command: command for command in BY_HAND}, INSIDE_PROCESSING: EXECUTION}


def _resolved(pattern) -> str:
    """A resource pattern of ci.iam or the template, for the moto account and the test's model."""
    from tests.support.aws import MOTO_BUCKET, MOTO_ROLE

    text = pattern["Fn::Sub"] if isinstance(pattern, dict) else pattern
    values = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "Bucket": MOTO_BUCKET,
              "Prefix": "modelops", "ExecutionRole.Arn": MOTO_ROLE}
    return re.sub(r"\$\{([^}]+)\}", lambda m: values[m[1]], text.replace("{model}", "abalone-model"))


def _grants(role: str) -> dict[str, list[str]]:
    """Each action ``role`` may make -> its resource patterns, resolved for the moto account."""
    from ci.iam import RESOURCES
    from ci.infra import execution_policy

    if role == EXECUTION:
        granted: dict[str, list[str]] = defaultdict(list)
        for statement in execution_policy()["Statement"]:
            for action in statement["Action"]:
                granted[action] += [_resolved(resource) for resource in statement["Resource"]]
        return dict(granted)
    return {action: [_resolved(RESOURCES[kind]) for kind in kinds] for action, kinds in role_actions(role).items()}


def _needed(calls) -> dict[str, dict[str, set[str]]]:
    """role -> IAM action -> the calls ("job: service.Operation") that need it."""
    needed: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for job, service, operation, params in calls:
        for action in iam_actions(service, operation, params):
            if action not in ALWAYS_ALLOWED:
                needed[ROLE_OF[job]][action].add(f"{job}: {service}.{operation}")
    return needed


@pytest.mark.slow  # every job's flow on moto, and the by-hand monitor commands: about 25-35 s
def test_every_call_of_every_job_is_allowed_to_its_role_on_its_resources_and_every_grant_is_used(recorded):
    # One test, not several over a shared fixture: pytest-xdist could run them on different workers, each driving
    # the flows again.
    assert {job for job, *_ in recorded} == set(ROLE_OF)
    needed = _needed(recorded)
    missing = {role: {action: sorted(calls) for action, calls in actions.items() if action not in _grants(role)}
               for role, actions in needed.items()}
    assert not {role: m for role, m in missing.items() if m}, (
        f"calls the role's policy does not allow (add a line to ci.iam.GRANTS or BY_HAND; the execution role's "
        f"policy is ci.infra.execution_policy): {missing}")
    # Not the execution role: most of what it is allowed is SageMaker's own doing (logs, images), not recorded.
    unused = {role: sorted(set(role_actions(role)) - set(needed.get(role, {}))) for role in [*GRANTS, *BY_HAND]}
    assert not {role: u for role, u in unused.items() if u}, (
        f"granted but never called (remove from ci.iam.GRANTS or BY_HAND): {unused}")
    _check_resources(recorded)


def _check_resources(recorded) -> None:
    """Every call acts on a resource its role's grant of that action names."""
    outside, unnamed = set(), set()
    for job, service, operation, params in recorded:
        role = ROLE_OF[job]
        for action in iam_actions(service, operation, params):
            if action in ALWAYS_ALLOWED:
                continue
            resources = acted_on(action, service, params, operation)
            if resources is None:
                unnamed.add(action)
                continue
            patterns = _grants(role)[action]
            for resource in resources:
                if not any(fnmatch.fnmatchcase(resource, pattern.replace("[", "[[]")) for pattern in patterns):
                    outside.add(f"{job}: {service}.{operation} -> {action} on {resource} (granted {patterns})")
            if action == "s3:ListBucket":
                assert params.get("Prefix", "").startswith("modelops/"), (job, operation, params)  # s3:prefix
    assert not outside, "calls on resources the role's grant does not name (fix ci.iam.RESOURCES):\n" + "\n".join(
        sorted(outside))
    # What the recording cannot name a resource for: the account-wide List/Describe calls, Application Auto
    # Scaling's own (scalable targets are named by ids AWS assigns) and the endpoint config it reads.
    assert unnamed == {"sagemaker:ListModelPackages", "sagemaker:ListMonitoringExecutions",
                       "sagemaker:DescribeEndpointConfig",
                       *(f"application-autoscaling:{operation}" for operation in (
                           "DescribeScalableTargets", "DescribeScalingPolicies", "RegisterScalableTarget",
                           "PutScalingPolicy", "DeleteScalingPolicy", "DeregisterScalableTarget"))}
