"""The built-in XGBoost container's side of a SageMaker training job, for moto (which runs nothing).

``XGBoostContainer`` plays the container for moto's training jobs with botocore event handlers on a trainer's own
SageMaker client: tests/test_trainer_contract.py's docstring says what it does and from which sources; the
least-privilege test (tests/test_aws_policies.py) uses it to train on moto as the train job does.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np

from modelops.errors import ConfigError, TrainingFailed
from modelops.training.train import fit
from tests.support.aws import REGION, moto_client


class XGBoostContainer:
    """Runs moto's training jobs as the built-in XGBoost container would (see the module docstring)."""

    LOG_GROUP = "/aws/sagemaker/TrainingJobs"

    def __init__(self, client):
        self.s3 = moto_client("s3")
        self.logs = moto_client("logs")
        self.requests: dict[str, dict] = {}
        self.failures: dict[str, str] = {}
        self.described: set[str] = set()
        events = client.meta.events
        events.register("before-parameter-build.sagemaker.CreateTrainingJob", self._check_request)
        events.register("after-call.sagemaker.CreateTrainingJob", self._run_job)
        events.register("after-call.sagemaker.DescribeTrainingJob", self._report)

    def _check_request(self, params, **kwargs):
        for channel in params["InputDataConfig"]:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            if not self._keys(uri):
                bucket = uri[len("s3://"):].split("/", 1)[0]
                raise _client_error("CreateTrainingJob", "ValidationException", (
                    f'No S3 objects found under S3 URL "{uri}" given in input data source. Please ensure that the '
                    f"bucket exists in the selected region ({REGION}), that objects exist under that S3 prefix, and "
                    f'that the role "{params["RoleArn"]}" has "s3:ListBucket" permissions on bucket "{bucket}".'))
        self.requests[params["TrainingJobName"]] = params

    def _run_job(self, parsed, **kwargs):
        if parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 200) >= 300:
            return
        arn = parsed["TrainingJobArn"]
        request = self.requests[arn.rsplit("/", 1)[1]]
        job = request["TrainingJobName"]
        lines = ["[2026-11-30:12:00:01:INFO] Running XGBoost Sagemaker in algorithm mode"]
        try:
            hyperparameters = {k: _parsed_hyperparameter(v) for k, v in request["HyperParameters"].items()}
            _validate_num_round(hyperparameters)
            data = {c["ChannelName"]: self._read(c["DataSource"]["S3DataSource"]["S3Uri"])
                    for c in request["InputDataConfig"]}
            try:
                result = fit(data["train"][:, 1:], data["train"][:, 0], data["validation"][:, 1:],
                             data["validation"][:, 0], hyperparameters)
            except ConfigError as exc:  # xgboost's refusal, in the toolkit's validation as the container has it
                raise _ContainerError("sagemaker_algorithm_toolkit/hyperparameter_validation.py", "validate",
                                      "UserError", _reason(exc)) from exc
            except TrainingFailed as exc:
                raise _ContainerError("sagemaker_xgboost_container/algorithm_mode/train.py", "train_job",
                                      "AlgorithmError", f"XGB train call failed with exception:\n {_reason(exc)}") \
                    from exc
        except _ContainerError as exc:
            self.failures[job] = exc.failure_reason()
            lines += exc.failure_reason().splitlines()
        else:
            from modelops.training.train import pack_model

            output = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            bucket, _, prefix = output[len("s3://"):].partition("/")
            self.s3.put_object(Bucket=bucket, Key=f"{prefix}/{job}/output/model.tar.gz",
                               Body=pack_model(result.booster))
            lines += result.log_lines
        self._log(job, lines)

    def _report(self, parsed, **kwargs):
        job = parsed.get("TrainingJobName")
        if job not in self.requests:
            return
        if job not in self.described:  # the first look finds it training, as a real job would be
            self.described.add(job)
            parsed.update(TrainingJobStatus="InProgress", SecondaryStatus="Training")
        elif job in self.failures:
            parsed.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=self.failures[job])

    def _keys(self, uri: str) -> list[str]:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def _read(self, uri: str) -> np.ndarray:
        bucket = uri[len("s3://"):].split("/", 1)[0]
        parts = [np.loadtxt(io.BytesIO(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()), delimiter=",",
                            ndmin=2) for key in self._keys(uri)]
        return np.concatenate(parts)

    def _log(self, job: str, lines: list[str]) -> None:
        try:
            self.logs.create_log_group(logGroupName=self.LOG_GROUP)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        stream = f"{job}/algo-1-{int(time.time())}"
        self.logs.create_log_stream(logGroupName=self.LOG_GROUP, logStreamName=stream)
        now = int(time.time() * 1000)
        self.logs.put_log_events(logGroupName=self.LOG_GROUP, logStreamName=stream,
                                 logEvents=[{"timestamp": now, "message": line} for line in lines if line])


class _ContainerError(Exception):
    """An error the container's training ends with; SageMaker reports it as the job's FailureReason."""

    def __init__(self, file: str, function: str, kind: str, message: str):
        super().__init__(message)
        self.file, self.function, self.kind, self.message = file, function, kind, message

    def failure_reason(self) -> str:
        # The training toolkit writes "framework error: \n<traceback>\n<message>" to /opt/ml/output/failure;
        # SageMaker prefixes AlgorithmError and cuts it at 1024 characters.
        text = (f"AlgorithmError: framework error: \nTraceback (most recent call last):\n"
                f'  File "/miniconda3/lib/python3.10/site-packages/{self.file}", in {self.function}\n'
                f"sagemaker_algorithm_toolkit.exceptions.{self.kind}: {self.message}\n\n{self.message}")
        return text[:1024]


def _parsed_hyperparameter(value: str):
    try:
        return json.loads(value)
    except ValueError:  # "Failed to parse hyperparameter objective value reg:squarederror to Json."
        return value


def _validate_num_round(hyperparameters: dict) -> None:
    validation = "sagemaker_algorithm_toolkit/hyperparameter_validation.py"
    if "num_round" not in hyperparameters:
        raise _ContainerError(validation, "validate", "UserError", "Missing required hyperparameter: num_round")
    if not isinstance(hyperparameters["num_round"], int) or hyperparameters["num_round"] < 1:
        raise _ContainerError(validation, "validate", "UserError",
                              f"Hyperparameter num_round: value {hyperparameters['num_round']} not in range [1, inf)")


def _reason(exc: BaseException) -> str:
    """XGBoost's own words from one of our errors (the container has no modelops wording)."""
    cause = exc.__cause__
    return str(cause).strip().splitlines()[0] if cause is not None else str(exc)


def _client_error(operation: str, code: str, message: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
