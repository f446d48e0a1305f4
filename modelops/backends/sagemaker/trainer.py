"""SageMaker trainer: a training job on the built-in XGBoost container, watched until it ends."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace

import botocore.exceptions

from modelops.backends.base import Trainer
from modelops.backends.sagemaker.aws import describe_error, error_code, translated
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.store import S3Store
from modelops.entities import TrainingResult, TrainingSpec
from modelops.errors import ConfigError, StoreError, TrainingFailed
from modelops.training.train import unpack_model

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# The container logs one line per round: "[12]#011train-rmse:2.1#011validation-rmse:2.3" (#011 is a tab).
_ROUND = re.compile(r"^\[(\d+)\](.*)$")
_METRIC = re.compile(r"(?:#011|\t|\s)(train|validation)-([\w@.-]+):(-?[\d.eE+-]+|nan|inf)")
_BEST = re.compile(r"Best iteration:\s*\[(\d+)\]")
#: A FailureReason in which the container says it refused the hyperparameters. Its toolkit validates them
#: in sagemaker_algorithm_toolkit/hyperparameter_validation.py and raises UserError("Hyperparameter eta: ...",
#: "Missing required hyperparameter: ...", "Extraneous hyperparameter found: ..."); the training toolkit
#: reports any error as "framework error:" and its traceback; xgboost's own parameter errors come through
#: as "XGB train call failed with exception". SageMaker cuts FailureReason at 1024 characters, so a long
#: traceback may lose the line that says so: that job stays a TrainingFailed, with its reason.
_HYPERPARAMETERS_REFUSED = re.compile(
    r"hyperparameter_validation\.py|UserError: (?:Hyperparameter |Missing required hyperparameter|Extraneous "
    r"hyperparameter)|Invalid Parameter format for|for Parameter \w+ should|Unknown (?:objective|metric) function")


class SageMakerTrainer(Trainer):
    """Creates a training job, streams its status, and returns its artifact with the sha256 of its bytes."""

    def __init__(self, sagemaker_client, logs_client, store: S3Store, role_arn: str, image_uri, *,
                 poll_seconds: float = 15, timeout_seconds: float | None = None):
        self.sagemaker = sagemaker_client
        self.logs = logs_client
        self.store = store
        self.role_arn = role_arn
        self.image_uri = image_uri
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds  # None: the job's max runtime plus 30 minutes for provisioning

    #: instance_count > 1 trains on that many instances, each on its shard of the train split.
    distributed = True

    def train(self, spec: TrainingSpec, *, log=print) -> TrainingResult:
        image = self.image_uri(spec.container_version)
        started = time.monotonic()
        if spec.instance_count > 1:
            spec = replace(spec, train_uri=shard_train_channel(self.store, spec.train_uri, spec.instance_count, log))
        self._create(spec, image)
        log(f"{spec.job_name}: created ({image}, {spec.instance_count} x {spec.instance_type})")
        job = self._wait(spec, log)
        status = job["TrainingJobStatus"]
        if status != "Completed":
            reason = (job.get("FailureReason") or "no FailureReason given").rstrip(". ")
            where = f"Logs: CloudWatch {LOG_GROUP}, streams {spec.job_name}/*."
            if status == "Failed" and _HYPERPARAMETERS_REFUSED.search(reason):
                raise ConfigError(f"training job {spec.job_name} Failed: the XGBoost container refused the "
                                  f"hyperparameters: {reason}. Fix: correct training.hyperparameters in model.yml "
                                  f"(see the SageMaker XGBoost hyperparameter reference). {where}")
            raise TrainingFailed(f"training job {spec.job_name} {status}: {reason}. {where}")
        artifact_uri = job["ModelArtifacts"]["S3ModelArtifacts"]
        try:
            artifact = self.store.get_bytes(artifact_uri)
        except StoreError as exc:
            raise TrainingFailed(f"training job {spec.job_name} Completed, but its model artifact is unreadable: "
                                 f"{exc}") from exc
        lines = self._log_lines(spec.job_name)
        curves, metric = parse_curves(lines)
        log_uri = None
        if lines:
            log_uri = self.store.put_bytes(f"{spec.output_uri.rstrip('/')}/training-log.txt",
                                           ("\n".join(lines) + "\n").encode(), content_type="text/plain").uri
        for line in lines[-3:]:
            log(line)
        best = _BEST.search("\n".join(lines))
        best_iteration = int(best.group(1)) if best else None
        if best is None and spec.hyperparameters.get("early_stopping_rounds"):
            # The container's log does not say it; xgboost keeps it in the model's attributes.
            try:
                best_iteration = _int(unpack_model(artifact, source=artifact_uri).attr("best_iteration"))
            except StoreError as exc:
                raise TrainingFailed(f"training job {spec.job_name} Completed, but its model artifact is unreadable: "
                                     f"{exc}") from exc
        return TrainingResult(
            job_name=spec.job_name,
            artifact_uri=artifact_uri,
            artifact_sha256=hashlib.sha256(artifact).hexdigest(),
            image=image,
            container_version=spec.container_version,
            xgboost_version=spec.container_version.split("-")[0],  # "3.2-0" runs xgboost 3.2.x
            hyperparameters=dict(spec.hyperparameters),
            eval_metric=metric or str(spec.hyperparameters.get("eval_metric", "")),
            curves=curves,
            rounds=len(curves.get("validation", [])) or int(spec.hyperparameters.get("num_round", 0)),
            best_iteration=best_iteration,
            duration_seconds=round(time.monotonic() - started, 3),
            log_uri=log_uri,
        )

    def _create(self, spec: TrainingSpec, image: str) -> None:
        try:
            self.sagemaker.create_training_job(**training_job_request(spec, image, self.role_arn))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            reason = describe_error(exc)
            if error_code(exc) == "ValidationException" and "hyperParameters" in reason:
                raise ConfigError(f"SageMaker refused training job {spec.job_name}'s hyperparameters: {reason}. Fix: "
                                  f"correct training.hyperparameters in model.yml.") from exc
            raise TrainingFailed(f"creating training job {spec.job_name} failed: {reason}. Fix: check the execution "
                                 f"role (SAGEMAKER_EXECUTION_ROLE_ARN), that the data channels hold objects, and the "
                                 f"account's instance quota.") from exc

    def _wait(self, spec: TrainingSpec, log) -> dict:
        timeout = self.timeout_seconds or spec.max_runtime_seconds + 1800

        def describe() -> dict:
            with translated(TrainingFailed, f"describing training job {spec.job_name}"):
                return self.sagemaker.describe_training_job(TrainingJobName=spec.job_name)

        def report(job: dict) -> str:
            message = (job.get("SecondaryStatusTransitions") or [{}])[-1].get("StatusMessage")
            return (f"{spec.job_name}: {job['TrainingJobStatus']} / {job.get('SecondaryStatus')}"
                    + (f" - {message}" if message else ""))

        return wait_until_ended(
            describe, name=spec.job_name, status=lambda job: job["TrainingJobStatus"],
            progress=lambda job: (job["TrainingJobStatus"], job.get("SecondaryStatus")), report=report,
            timeout=timeout, poll_seconds=self.poll_seconds, log=log,
            stop=lambda: self.sagemaker.stop_training_job(TrainingJobName=spec.job_name),
            timed_out=lambda job: TrainingFailed(
                f"training job {spec.job_name} was still {job['TrainingJobStatus']} ({job.get('SecondaryStatus')}) "
                f"after {timeout:.0f}s; it was asked to stop so it costs nothing more. Fix: raise "
                f"training.max_runtime_seconds in model.yml, or look at its CloudWatch logs."))

    def _log_lines(self, job_name: str) -> list[str]:
        """The job's CloudWatch log lines (empty when it wrote none or logs cannot be read)."""
        lines: list[str] = []
        try:
            streams = []
            for page in self.logs.get_paginator("describe_log_streams").paginate(
                    logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/"):
                streams += [s["logStreamName"] for s in page["logStreams"]]
            for stream in sorted(streams):  # algo-1, algo-2, ...: one per instance
                request = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
                while True:
                    page = self.logs.get_log_events(**request)
                    lines += [event["message"].rstrip("\n") for event in page["events"]]
                    if not page["events"] or page.get("nextForwardToken") in (None, request.get("nextToken")):
                        break
                    request["nextToken"] = page["nextForwardToken"]
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                lines.append(f"(the training log could not be read: {describe_error(exc)})")
        return lines


def training_job_request(spec: TrainingSpec, image: str, role_arn: str) -> dict:
    """The CreateTrainingJob request: built-in XGBoost, text/csv train and validation channels.

    SageMaker writes the artifact to ``<S3OutputPath>/<job name>/output/model.tar.gz``; the output path is
    the parent of ``spec.output_uri`` so that it lands at ``<spec.output_uri>/output/model.tar.gz``, where
    the local trainer puts it too.
    """
    output = spec.output_uri.rstrip("/")
    head, _, last = output.rpartition("/")
    output_path = head if last == spec.job_name else output
    return {
        "TrainingJobName": spec.job_name,
        "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
        "RoleArn": role_arn,
        # SageMaker takes hyperparameters as strings; the container parses them.
        "HyperParameters": {k: str(v) for k, v in spec.hyperparameters.items()},
        "InputDataConfig": channels(spec.train_uri, spec.validation_uri, sharded=spec.instance_count > 1),
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                           "VolumeSizeInGB": 10},
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        "Tags": [{"Key": "modelops:model", "Value": spec.model}],
    }


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def channels(train_uri: str, validation_uri: str, *, sharded: bool = False) -> list[dict]:
    """The train and validation channels as the built-in container reads them: text/csv under an S3 prefix.

    ``sharded`` (distributed training): each instance gets its share of the train prefix's objects
    (``ShardedByS3Key``), while validation stays whole on every instance (``FullyReplicated``). The container
    (sagemaker_xgboost_container/algorithm_mode/train.py) leaves a host without train or validation data out of
    the rabit ring, so every instance needs both; and with a replicated train channel every instance would
    add the same rows' gradients again, which is not the single-instance model.
    """

    def channel(name: str, uri: str, distribution: str) -> dict:
        return {"ChannelName": name, "ContentType": "text/csv", "CompressionType": "None",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                                "S3DataDistributionType": distribution}}}

    return [channel("train", train_uri, "ShardedByS3Key" if sharded else "FullyReplicated"),
            channel("validation", validation_uri, "FullyReplicated")]


#: Written last beside the shards' prefix (not in it: SageMaker would hand it to an instance as data): their
#: source's sha256 and count, so a complete set is reused, never a part.
SHARDS_MANIFEST_SUFFIX = ".json"


def shard_train_channel(store: S3Store, train_uri: str, count: int, log=print) -> str:
    """Split the train channel's rows into ``count`` objects under a sibling prefix and return that prefix.

    SageMaker's ``ShardedByS3Key`` hands each of n instances about 1/n of the prefix's *objects*, so the one
    ``train.csv`` a dataset holds is cut into ``count`` contiguous parts of nearly equal rows (in order: their
    concatenation is the original file). The shards of one train file are written once per count
    (``<train>-shards-<count>/``) and reused while their manifest (``<train>-shards-<count>.json``) names the
    same source sha256.

    Raises:
        ConfigError: the split has fewer rows than instances (an instance would get none).
        StoreError: the train channel cannot be read or the shards cannot be written.
    """
    objects = [o for o in store.list_objects(train_uri) if not o.uri.endswith("/")]
    if not objects:
        raise StoreError(f"the train channel {train_uri} holds no objects. Fix: gather the data again.")
    body = b"".join(_with_newline(store.get_bytes(o.uri)) for o in objects)
    source = hashlib.sha256(body).hexdigest()
    prefix = f"{train_uri.rstrip('/')}-shards-{count}/"
    manifest_uri = prefix.rstrip("/") + SHARDS_MANIFEST_SUFFIX
    if store.exists(manifest_uri) and json.loads(store.get_bytes(manifest_uri)).get("source_sha256") == source:
        log(f"train channel: reusing {count} shards under {prefix}")
        return prefix
    rows = body.splitlines(keepends=True)
    if len(rows) < count:
        raise ConfigError(f"training.instance_count is {count}, but the train split has {len(rows)} rows: an instance "
                          f"without rows is left out of training. Fix: lower training.instance_count in model.yml "
                          f"to at most {len(rows)} (one instance is plenty for a split this small).")
    base, extra = divmod(len(rows), count)
    start = 0
    for index in range(count):
        size = base + (1 if index < extra else 0)
        store.put_bytes(f"{prefix}part-{index:05d}-of-{count:05d}.csv", b"".join(rows[start:start + size]),
                        content_type="text/csv")
        start += size
    store.put_bytes(manifest_uri, json.dumps({"source_sha256": source, "count": count, "rows": len(rows)}).encode(),
                    content_type="application/json")
    log(f"train channel: {len(rows)} rows in {count} shards under {prefix} (ShardedByS3Key, one per instance)")
    return prefix


def _with_newline(data: bytes) -> bytes:
    return data if not data or data.endswith(b"\n") else data + b"\n"


def parse_curves(lines: list[str]) -> tuple[dict[str, list[float]], str | None]:
    """Per-round train/validation metric values from the container's log, and the metric's name."""
    curves: dict[str, list[float]] = {}
    metric = None
    for line in lines:
        found = _ROUND.match(line.strip())
        if not found:
            continue
        for channel, name, value in _METRIC.findall(found.group(2)):
            if metric is None:
                metric = name
            if name == metric:
                curves.setdefault(channel, []).append(float(value))
    return curves, metric
