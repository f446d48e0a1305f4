"""SageMaker endpoints: a model and an endpoint config per deployed version, one endpoint per model name.

What an endpoint serves now and served before is kept in the endpoint's own tags (``modelops:version``,
``modelops:previous-version``, ``modelops:previous-config``), so any machine with the credentials can roll
back, and ``stop`` deletes exactly the models and endpoint configs tagged ``modelops:endpoint=<name>``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from modelops.backends.base import Endpoints
from modelops.backends.sagemaker.aws import describe_error, is_not_found, timestamped_name, translated
from modelops.backends.sagemaker.guardrails import (
    Alarms,
    Registered,
    Scaling,
    deployment_config,
    describe_rollout,
    is_guarded,
    rollout_seconds,
)
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.store import S3Store
from modelops.config import DEFAULT_INSTANCE_COUNT, DEFAULT_INSTANCE_TYPE
from modelops.entities import (
    IN_SERVICE,
    INVOKE_MAX_PAYLOAD_MB,
    PRODUCTION_VARIANT,
    DataCapture,
    Deployment,
    EndpointLimits,
    EndpointStatus,
    PackageVersion,
)
from modelops.errors import EndpointFailed, RolloutRolledBack, StoreError

ENDPOINT_TAG = "modelops:endpoint"
VERSION_TAG = "modelops:version"
PREVIOUS_VERSION_TAG = "modelops:previous-version"
PREVIOUS_CONFIG_TAG = "modelops:previous-config"
VARIANT = PRODUCTION_VARIANT
#: Statuses that end a wait (anything else, such as Creating or Updating, is still moving).
SETTLED = (IN_SERVICE, "Failed", "OutOfService", "UpdateRollbackFailed")
#: ``_switch``'s autoscaling for a rollback: keep whatever the endpoint is registered with.
KEEP_SCALING = object()


class SageMakerEndpoints(Endpoints):
    """Real-time endpoints on SageMaker hosting, running the registered package's XGBoost container."""

    def __init__(self, sagemaker_client, runtime_client, store: S3Store, role_arn: str, region: str, *,
                 cloudwatch_client=None, autoscaling_client=None, poll_seconds: float = 15):
        self.sagemaker = sagemaker_client
        self.runtime = runtime_client
        self.alarms = Alarms(cloudwatch_client)
        self.scaling = Scaling(autoscaling_client)
        self.store = store
        self.role_arn = role_arn
        self.region = region
        self.poll_seconds = poll_seconds
        self._packages: dict[str, str | None] = {}  # endpoint config -> the package it serves (configs never change)

    # -- the interface -------------------------------------------------------------------------------------

    def deploy(self, name: str, package: PackageVersion, *, instance_type: str = DEFAULT_INSTANCE_TYPE,
               instance_count: int = DEFAULT_INSTANCE_COUNT, timeout: float = 600,
               environment: dict[str, str] | None = None,
               data_capture: DataCapture | None = None, rollout=None, autoscaling=None,
               log=print) -> Deployment:
        """See ``Endpoints.deploy``. On SageMaker, ``rollout`` makes an update of an existing endpoint a guarded
        one (deployment guardrails, rolled back by the CloudWatch alarms of ``guardrails.rollout_alarms``; a first
        deploy has nothing to shift from), and ``autoscaling`` registers the variant with Application Auto Scaling
        once the endpoint serves (None: any registration is removed)."""
        self._check_artifact(name, package)
        config = self._create_config(name, package, instance_type, instance_count, environment or {}, data_capture,
                                     log)
        return self._switch(name, config, package.version, timeout=timeout, log=log, action="deploy",
                            rollout=rollout, autoscaling=autoscaling, instance_type=instance_type)

    def rollback(self, name: str, *, timeout: float = 600, log=print) -> Deployment:
        endpoint, tags = self._describe(name)
        if endpoint is None:
            raise EndpointFailed(f"there is no endpoint {name!r} to roll back. Fix: deploy it first.")
        previous = tags.get(PREVIOUS_CONFIG_TAG)
        if not previous:
            raise EndpointFailed(f"endpoint {name!r} has no previous version to roll back to (it serves "
                                 f"v{tags.get(VERSION_TAG)}, its first deployed version).")
        return self._switch(name, previous, int(tags[PREVIOUS_VERSION_TAG]), timeout=timeout, log=log,
                            action="rollback", autoscaling=KEEP_SCALING)

    def status(self, name: str) -> EndpointStatus | None:
        endpoint, tags = self._describe(name)
        if endpoint is None:
            return None
        created, modified = endpoint.get("CreationTime"), endpoint.get("LastModifiedTime")
        return EndpointStatus(
            name=name,
            status=endpoint["EndpointStatus"],
            version=config_version(endpoint["EndpointConfigName"]) or _int(tags.get(VERSION_TAG)),
            previous_version=_int(tags.get(PREVIOUS_VERSION_TAG)),
            url=self.url(name),
            started_at=created.isoformat(timespec="seconds") if isinstance(created, datetime) else None,
            package_id=self._served_package(endpoint["EndpointConfigName"]),
            server_id=(f"{endpoint['EndpointConfigName']} modified {modified.isoformat()}"
                       if isinstance(modified, datetime) else None),
            detail={"endpoint_config": endpoint.get("EndpointConfigName"),
                    "previous_endpoint_config": tags.get(PREVIOUS_CONFIG_TAG), "arn": endpoint.get("EndpointArn")},
            message=endpoint.get("FailureReason") or "",
        )

    def list(self) -> list[EndpointStatus]:
        names = []
        with translated(EndpointFailed, "listing endpoints"):
            for page in self.sagemaker.get_paginator("list_endpoints").paginate():
                names += [e["EndpointName"] for e in page["Endpoints"]]
        return [s for s in (self.status(n) for n in sorted(names)) if s is not None]

    def invoke(self, name: str, body: bytes, *, content_type: str = "text/csv", accept: str = "text/csv",
               inference_id: str | None = None) -> bytes:
        import botocore.exceptions

        from modelops.backends.invoke import invoke_endpoint

        fix = (f"Fix: see `python -m ci endpoints` and the endpoint's CloudWatch logs "
               f"(/aws/sagemaker/Endpoints/{name}).")
        try:
            return invoke_endpoint(self.runtime, name, body, content_type=content_type, accept=accept, fix=fix,
                                   inference_id=inference_id)
        except botocore.exceptions.EndpointConnectionError as exc:
            raise EndpointFailed(f"invoking endpoint {name!r} failed: {exc}. {fix}") from exc

    def limits(self, name: str) -> EndpointLimits:
        """InvokeEndpoint's 6 MB, and one request in flight per vCPU of the variant's instances.

        A real-time endpoint does not expose its container's ``/execution-parameters``; the XGBoost container
        answers ``MaxConcurrentTransforms`` with its CPU count (one gunicorn worker each), which is what the
        instance type and count give here.
        """
        endpoint, _ = self._describe(name)
        if endpoint is None:
            raise EndpointFailed(f"there is no endpoint {name!r} created by this project. Fix: see "
                                 f"`python -m ci endpoints`.")
        variant = (endpoint.get("ProductionVariants") or [{}])[0]
        count = variant.get("CurrentInstanceCount") or variant.get("DesiredInstanceCount") or 1
        vcpus = instance_vcpus(self._instance_type(endpoint["EndpointConfigName"]) or DEFAULT_INSTANCE_TYPE)
        return EndpointLimits(INVOKE_MAX_PAYLOAD_MB * 1024 ** 2, int(count) * vcpus)

    def stop(self, name: str) -> None:
        endpoint, _ = self._describe(name)
        if endpoint is None:
            raise EndpointFailed(f"there is no endpoint {name!r} created by this project. Fix: see "
                                 f"`python -m ci endpoints`.")
        # Autoscaling first: AWS deregisters the variant with the endpoint only if the caller may do so itself.
        self.scaling.deregister(name)
        with translated(EndpointFailed, f"deleting endpoint {name}"):
            self.sagemaker.delete_endpoint(EndpointName=name)
        self.alarms.delete_for(name)
        # Only what carries our tag for this exact endpoint name: never everything whose name contains it.
        for kind in ("endpoint_config", "model"):
            for resource in self._owned(kind, name):
                with translated(EndpointFailed, f"deleting {kind.replace('_', ' ')} {resource}"):
                    getattr(self.sagemaker, f"delete_{kind}")(**{_NAME_KEY[kind]: resource})

    def url(self, name: str) -> str:
        return f"https://runtime.sagemaker.{self.region}.amazonaws.com/endpoints/{name}/invocations"

    # -- how -----------------------------------------------------------------------------------------------

    def _check_artifact(self, name: str, package: PackageVersion) -> None:
        """Refuse, before anything is created, an artifact that is not the one registered; say what still serves."""
        try:
            actual = hashlib.sha256(self.store.get_bytes(package.artifact_uri)).hexdigest()
        except StoreError as exc:
            raise EndpointFailed(f"{package.label}'s artifact cannot be read: {exc} Nothing was deployed; "
                                 f"{self._serving_now(name)}.") from exc
        if actual != package.artifact_sha256:
            raise EndpointFailed(f"{package.artifact_uri} has sha256 {actual}, but {package.label} recorded "
                                 f"{package.artifact_sha256}: the artifact changed after training. Nothing was "
                                 f"deployed; {self._serving_now(name)}. Fix: train and register a new version.")

    def _serving_now(self, name: str) -> str:
        try:
            status = self.status(name)
        except EndpointFailed:
            return f"what serves on {name} is unchanged"
        if status is None:
            return f"nothing serves on {name}"
        return f"v{status.version} keeps serving on {name}" if status.version else f"{name} is {status.status}"

    def _create_config(self, name: str, package: PackageVersion, instance_type: str, instance_count: int,
                       environment: dict[str, str], capture: DataCapture | None, log) -> str:
        resource = timestamped_name(name, f"v{package.version}")
        tags = [{"Key": ENDPOINT_TAG, "Value": name}, {"Key": VERSION_TAG, "Value": str(package.version)}]
        # The container's switches (model.yml serving) belong to this model, so a rollback restores the previous.
        container = {"ModelPackageName": package.package_id, **({"Environment": environment} if environment else {})}
        with translated(EndpointFailed, f"creating model {resource} from {package.label}",
                        "the package must be Approved and the execution role able to read its artifact"):
            self.sagemaker.create_model(ModelName=resource, ExecutionRoleArn=self.role_arn, Tags=tags,
                                        PrimaryContainer=container)
            self.sagemaker.create_endpoint_config(
                EndpointConfigName=resource, Tags=tags,
                ProductionVariants=[{"VariantName": VARIANT, "ModelName": resource, "InstanceType": instance_type,
                                     "InitialInstanceCount": instance_count, "InitialVariantWeight": 1.0}],
                **({"DataCaptureConfig": data_capture_config(capture)} if capture else {}))
        captured = f", capturing {capture.sampling_percentage:g}% to {capture.destination}" if capture else ""
        log(f"{name}: model and endpoint config {resource} ({instance_count} x {instance_type}{captured})")
        return resource

    def _switch(self, name: str, config: str, version: int, *, timeout: float, log, action: str, rollout=None,
                autoscaling=KEEP_SCALING, instance_type: str | None = None) -> Deployment:
        endpoint, tags = self._describe(name)
        arn_tags = [{"Key": ENDPOINT_TAG, "Value": name}, {"Key": VERSION_TAG, "Value": str(version)}]
        if endpoint is None:
            with translated(EndpointFailed, f"creating endpoint {name}"):
                self.sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config, Tags=arn_tags)
            log(f"{name}: creating (v{version}, endpoint config {config})")
            settled = self._wait(name, timeout, log)
            if settled["EndpointStatus"] != IN_SERVICE:
                raise EndpointFailed(f"{action} of {name} to v{version} failed: endpoint {settled['EndpointStatus']}: "
                                     f"{failure_reason(settled)}. Nothing is serving "
                                     f"on {name} (logs: CloudWatch /aws/sagemaker/Endpoints/{name}).")
            if autoscaling is not KEEP_SCALING:
                self.scaling.apply(name, autoscaling, log)
            message = f"{name} serves v{version} (before: nothing)"
            log(message)
            return Deployment(name, version, None, self.url(name), IN_SERVICE, True, message)

        current_config = endpoint["EndpointConfigName"]
        current_version = config_version(current_config) or _int(tags.get(VERSION_TAG))
        if endpoint["EndpointStatus"] != IN_SERVICE:
            raise EndpointFailed(f"endpoint {name} is {endpoint['EndpointStatus']}, not InService, so it cannot be "
                                 f"switched to v{version} now"
                                 + (f" ({endpoint['FailureReason']})" if endpoint.get("FailureReason") else "")
                                 + ". Fix: wait for it to settle (`python -m ci endpoints`); a Failed endpoint can "
                                   "only be stopped and deployed again.")
        guard, alarm_names = {}, []
        if is_guarded(rollout):
            alarm_names = self.alarms.put(name, rollout.slo, log)
            guard = {"DeploymentConfig": deployment_config(rollout, alarm_names)}
        suspended = self._suspend_scaling(name, current_config, config, instance_type, log)
        serving = f"v{current_version} keeps serving ({current_config})"
        try:
            with translated(EndpointFailed, f"updating endpoint {name} to {config}", serving):
                self.sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=config, **guard)
        except EndpointFailed:
            self.scaling.restore(name, suspended)
            raise
        shifting = f", {describe_rollout(rollout)}, rolled back by its alarms" if guard else ""
        log(f"{name}: updating from v{current_version} ({current_config}) to v{version} ({config}{shifting})")
        settled = self._wait(name, timeout + rollout_seconds(rollout if guard else None), log,
                             serving=f"v{current_version} ({current_config})")
        if settled["EndpointStatus"] != IN_SERVICE or settled["EndpointConfigName"] != config:
            reason = failure_reason(settled)
            if settled["EndpointStatus"] == IN_SERVICE and settled["EndpointConfigName"] == current_config:
                self.scaling.restore(name, suspended)
                alarms = (f" (alarms: {', '.join(alarm_names)}; see their history in CloudWatch)" if guard else "")
                message = (f"{action} of {name} to v{version} failed: {reason}{alarms}. v{current_version} keeps "
                           f"serving (endpoint config {current_config}); logs: CloudWatch "
                           f"/aws/sagemaker/Endpoints/{name}.")
                if guard:  # the guardrails rolled it back: deploy_package records it in the history
                    raise RolloutRolledBack(message, endpoint=name, version=current_version,
                                            package_id=None,  # the history names it by version
                                            rolled_back=version, reason=f"{reason}{alarms}")
                raise EndpointFailed(message)
            raise EndpointFailed(f"{action} of {name} to v{version} failed: endpoint {settled['EndpointStatus']} with "
                                 f"config {settled['EndpointConfigName']}: {reason}. Fix: deploy a known good version "
                                 f"again (`python -m ci deploy <model folder> --version N`).")
        with translated(EndpointFailed, f"recording what {name} serves in its tags"):
            self.sagemaker.add_tags(ResourceArn=settled["EndpointArn"], Tags=[
                *arn_tags, {"Key": PREVIOUS_VERSION_TAG, "Value": str(current_version)},
                {"Key": PREVIOUS_CONFIG_TAG, "Value": current_config}])
        if autoscaling is KEEP_SCALING:
            self.scaling.restore(name, suspended)
        else:
            self.scaling.apply(name, autoscaling, log)
        message = f"{name} serves v{version} (before: v{current_version})"
        log(message)
        return Deployment(name, version, current_version, self.url(name), IN_SERVICE, True, message)

    def _suspend_scaling(self, name: str, current_config: str, config: str, instance_type: str | None,
                         log) -> Registered | None:
        """Deregister the variant from autoscaling when the update changes its instance type, which SageMaker
        refuses for a scalable target; return what was registered, to restore (None: nothing was removed)."""
        registered = self.scaling.registered(name)
        if registered is None:
            return None
        old_type, new_type = self._instance_type(current_config), instance_type or self._instance_type(config)
        if old_type == new_type:
            return None
        self.scaling.deregister(name)
        log(f"{name}: autoscaling deregistered while the instance type changes from {old_type} to {new_type}")
        return registered

    def _instance_type(self, config: str) -> str | None:
        with translated(EndpointFailed, f"reading endpoint config {config}"):
            variants = self.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        return variants[0].get("InstanceType")

    def _wait(self, name: str, timeout: float, log, *, serving: str | None = None) -> dict:
        def describe() -> dict:
            with translated(EndpointFailed, f"describing endpoint {name}"):
                return self.sagemaker.describe_endpoint(EndpointName=name)

        def timed_out(endpoint: dict) -> EndpointFailed:
            still = f"{serving} keeps serving until it finishes" if serving else "nothing serves yet"
            return EndpointFailed(f"endpoint {name} was still {endpoint['EndpointStatus']} after {timeout:.0f}s; "
                                  f"SageMaker carries on, and {still}. Fix: watch `python -m ci endpoints`, or pass a "
                                  f"longer --timeout.")

        # no stop: SageMaker carries on with the endpoint, as the timeout error says
        return wait_until_ended(describe, name=name, status=lambda endpoint: endpoint["EndpointStatus"],
                                ended=SETTLED.__contains__, timeout=timeout, poll_seconds=self.poll_seconds, log=log,
                                timed_out=timed_out)

    def _served_package(self, config: str) -> str | None:
        """The model package an endpoint config of ours serves: config -> model -> its ModelPackageName."""
        if config not in self._packages:
            with translated(EndpointFailed, f"reading endpoint config {config}"):
                variants = self.sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
                model = self.sagemaker.describe_model(ModelName=variants[0]["ModelName"])
            self._packages[config] = (model.get("PrimaryContainer") or {}).get("ModelPackageName")
        return self._packages[config]

    def _describe(self, name: str) -> tuple[dict | None, dict[str, str]]:
        """The endpoint and its tags, or (None, {}) if it does not exist or this project did not create it."""
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if is_not_found(exc):
                return None, {}
            raise EndpointFailed(f"describing endpoint {name} failed: {describe_error(exc)}") from exc
        tags = self._tags(endpoint["EndpointArn"])
        if tags.get(ENDPOINT_TAG) != name:
            return None, {}
        return endpoint, tags

    def _tags(self, arn: str) -> dict[str, str]:
        tags = {}
        with translated(EndpointFailed, f"reading the tags of {arn}"):
            for page in self.sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
                tags.update({t["Key"]: t["Value"] for t in page["Tags"]})
        return tags

    def _owned(self, kind: str, name: str) -> list[str]:
        """Models or endpoint configs tagged as created for endpoint ``name`` (names are prefixed with it)."""
        plural = {"model": "Models", "endpoint_config": "EndpointConfigs"}[kind]
        found = []
        with translated(EndpointFailed, f"listing {kind.replace('_', ' ')}s of {name}"):
            for page in self.sagemaker.get_paginator(f"list_{kind}s").paginate(NameContains=name):
                for item in page[plural]:
                    if self._tags(item[_ARN_KEY[kind]]).get(ENDPOINT_TAG) == name:
                        found.append(item[_NAME_KEY[kind]])
        return found


_CONFIG_NAME = re.compile(r"-v(\d+)-\d{14}-[0-9a-f]{4}$")
_NAME_KEY = {"model": "ModelName", "endpoint_config": "EndpointConfigName"}
_ARN_KEY = {"model": "ModelArn", "endpoint_config": "EndpointConfigArn"}


def data_capture_config(capture: DataCapture) -> dict:
    """CreateEndpointConfig's DataCaptureConfig: as the SageMaker SDK's DataCaptureConfig._to_request_dict builds it.

    SageMaker takes a whole-number sampling percentage (0-100); a fraction is rounded up, so a small share is never
    turned into none.
    """
    import math

    modes = [mode for mode, on in (("Input", capture.capture_input), ("Output", capture.capture_output)) if on]
    return {"EnableCapture": True, "InitialSamplingPercentage": min(100, math.ceil(capture.sampling_percentage)),
            "DestinationS3Uri": capture.destination, "CaptureOptions": [{"CaptureMode": mode} for mode in modes],
            "CaptureContentTypeHeader": {"CsvContentTypes": list(capture.csv_content_types),
                                         "JsonContentTypes": list(capture.json_content_types)}}


def instance_vcpus(instance_type: str) -> int:
    """The vCPUs of an ``ml.*`` instance type by its size, as EC2 sizes them: medium and large 2, xlarge 4,
    Nxlarge 4N (an unknown size counts as 2, the smallest a hosting instance has)."""
    size = instance_type.rsplit(".", 1)[-1]
    if size == "xlarge":
        return 4
    match = re.fullmatch(r"(\d+)xlarge", size)
    return 4 * int(match.group(1)) if match else 2


def failure_reason(described: dict) -> str:
    """SageMaker's FailureReason as the middle of a sentence (its trailing period dropped)."""
    return (described.get("FailureReason") or "no FailureReason given").rstrip(". ")


def config_version(config: str) -> int | None:
    """The package version an endpoint config of ours serves, from its name (``<name>-v<N>-<stamp>-<hex>``).

    Read from the config actually in use rather than from a tag, so it stays right even when a wait timed
    out before the tags were updated.
    """
    found = _CONFIG_NAME.search(config or "")
    return int(found.group(1)) if found else None


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None
