"""SageMaker Model Monitor on a production endpoint's capture: a one-time data-quality job for ``ci monitor``, a
model-quality job when ground truth is given, and an hourly or daily monitoring schedule (``--schedule``).

Each job is what the SageMaker SDK's ``DefaultModelMonitor`` / ``ModelQualityMonitor`` create: a job definition
(CreateDataQualityJobDefinition / CreateModelQualityJobDefinition) on AWS's analyzer image, and a monitoring
schedule that names it. ``ci monitor`` uses a one-time schedule (``ScheduleExpression: NOW`` with the window as
``DataAnalysisStartTime``/``EndTime`` offsets, at most 24 hours), waits for its execution, reads the
statistics.json and constraint_violations.json the analyzer wrote, and deletes the one-time schedule and
definition. The baseline is the served version's own (modelops.monitoring.analyzer), with model.yml's thresholds
as they are now; the record preprocessor makes Model Monitor see the same features as the local monitor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from modelops.backends.sagemaker.aws import is_not_found, timestamped_name, translated
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.store import S3Store
from modelops.config import ModelConfig
from modelops.errors import ConfigError, ProcessingFailed, StoreError
from modelops.monitoring.analyzer import (
    analyzed_capture,
    analyzer_baseline,
    analyzer_differences,
    preprocessor_script,
    quality_from_analyzer,
    report_from_analyzer,
)
from modelops.monitoring.baseline import dumps, quality_constraints
from modelops.monitoring.monitor import WindowCheck
from modelops.monitoring.quality import read_labels
from modelops.monitoring.traffic import ServedModel, Window

#: The analyzer's instance: what the SDK's examples use; Model Monitor runs Spark on it.
INSTANCE_TYPE = "ml.m5.xlarge"
VOLUME_GB = 20
MAX_RUNTIME_SECONDS = 3600  # a schedule's job must end within its period; hourly is the shortest
#: Model Monitor's cron expressions (the service model's documentation lists these forms).
SCHEDULES = {"hourly": "cron(0 * ? * * *)", "daily": "cron(0 0 ? * * *)"}
#: The longest window one Model Monitor execution analyses (DataAnalysisStartTime to EndTime).
MAX_WINDOW = timedelta(hours=24)
DONE = ("Completed", "CompletedWithViolations", "Failed", "Stopped")
ENDPOINT_DIR = "/opt/ml/processing/input/endpoint"
OUTPUT_DIR = "/opt/ml/processing/output"
#: Model Monitor's problem types, by ours.
PROBLEM_TYPES = {"regression": "Regression", "binary": "BinaryClassification", "multiclass": "MulticlassClassification"}


@dataclass(frozen=True)
class AnalyzerInputs:
    """What a Model Monitor job is given, in S3: the baseline files and the record preprocessor."""

    statistics: str
    constraints: str
    preprocessor: str
    quality_constraints: str


@dataclass(frozen=True)
class Execution:
    """A monitoring execution that ended: its status, its processing job, and the files it wrote."""

    schedule: str
    status: str
    job: str
    failure_reason: str | None
    output_uri: str | None
    statistics: dict
    violations: dict


class ModelMonitor:
    """Model Monitor's jobs on one account's endpoints, their files under ``<store>/<model>/model-monitor/``."""

    def __init__(self, sagemaker_client, store: S3Store, role_arn: str, region: str, *, poll_seconds: float = 15,
                 timeout_seconds: float | None = None, instance_type: str = INSTANCE_TYPE):
        self.sagemaker = sagemaker_client
        self.store = store
        self.role_arn = role_arn
        self.region = region
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.instance_type = instance_type

    # -- ci monitor: one window, now ---------------------------------------------------------------------------

    def check(self, config: ModelConfig, served: ServedModel, window: Window, labels: str | None = None, *,
              log=print) -> WindowCheck:
        """Run Model Monitor's data-quality job on the window (and its model-quality job with ``labels``).

        Raises:
            ConfigError: the window is longer than Model Monitor analyses at once, or data capture is off.
            ProcessingFailed: a job failed (its FailureReason) or did not end in time.
            StoreError: the baseline or preprocessor could not be written, or the job's files not read.
        """
        start, end = window_offsets(window)
        inputs = self.prepare(config, served)
        execution = self._once(config, served, "data-quality", start, end, inputs, None, log)
        notes = tuple(f"not checked by Model Monitor: {n}" for n in analyzer_differences(config))
        captured = analyzed_capture(served, self.store.uri(config.name, "capture"), window, execution.statistics,
                                    execution.job, execution.output_uri or "", notes)
        _, constraints = analyzer_baseline(config, served)
        report = report_from_analyzer(config, served, execution.statistics, execution.violations, constraints)
        if labels is None:
            from modelops.monitoring.quality import LiveQuality

            return WindowCheck(captured, report, LiveQuality(None, 0, 0, {}, None), where=execution.job)
        if config.problem_type == "multiclass":
            raise ConfigError("Model Monitor's model-quality job reads the predicted label from the capture, and a "
                              "multiclass endpoint answers probabilities per class. Fix: run the live quality check "
                              "on the capture in the monitor notebook instead: python -m ci monitor MODEL --backend "
                              "sagemaker --labels FILE --engine notebook.")
        truth = self.upload_ground_truth(config, served, labels)
        quality_run = self._once(config, served, "model-quality", start, end, inputs, truth, log)
        quality = quality_from_analyzer(config, labels, quality_run.statistics, quality_run.violations,
                                        quality_run.job)
        return WindowCheck(captured, report, quality, where=f"{execution.job}, {quality_run.job}")

    def prepare(self, config: ModelConfig, served: ServedModel) -> AnalyzerInputs:
        """Write the served version's baseline for Model Monitor, with model.yml's thresholds now, and its
        record preprocessor (each run rewrites them: a threshold changed in model.yml needs no retraining)."""
        statistics, constraints = analyzer_baseline(config, served)
        root = self.store.uri(config.name, "model-monitor", served.endpoint, f"v{served.package.version}")
        put = self.store.put_bytes
        quality = quality_constraints(config)  # model.yml's quality gates as they are now
        return AnalyzerInputs(
            statistics=put(f"{root}/baseline/statistics.json", dumps(statistics), content_type="application/json").uri,
            constraints=put(f"{root}/baseline/constraints.json", dumps(constraints),
                            content_type="application/json").uri,
            preprocessor=put(f"{root}/preprocessor.py", preprocessor_script(config, served).encode(),
                             content_type="text/x-python").uri,
            quality_constraints=put(f"{root}/quality/constraints.json", dumps(quality),
                                    content_type="application/json").uri)

    def upload_ground_truth(self, config: ModelConfig, served: ServedModel, labels: str) -> str:
        """The labels file as Model Monitor's ground-truth JSON lines, under this hour's folder; its prefix."""
        given = read_labels(labels)
        lines = "".join(json.dumps({"groundTruthData": {"data": value, "encoding": "CSV"},
                                    "eventMetadata": {"eventId": event}, "eventVersion": "0"}) + "\n"
                        for event, value in given.items())
        prefix = self.store.uri(config.name, "model-monitor", served.endpoint, "ground-truth")
        hour = datetime.now(UTC).strftime("%Y/%m/%d/%H")
        self.store.put_bytes(f"{prefix}/{hour}/labels.jsonl", lines.encode(), content_type="application/jsonlines")
        return prefix

    # -- ci monitor --schedule ---------------------------------------------------------------------------------

    def schedule(self, config: ModelConfig, served: ServedModel, frequency: str, *, log=print) -> str:
        """Create, or point at the served version's baseline, the endpoint's data-quality monitoring schedule.

        Raises:
            ConfigError: an unknown frequency.
            ProcessingFailed: SageMaker refused the schedule or its job definition.
        """
        if frequency not in SCHEDULES:
            raise ConfigError(f"--schedule {frequency!r} is not a schedule Model Monitor runs here. Fix: use one of "
                              f"{sorted(SCHEDULES)}.")
        inputs = self.prepare(config, served)
        name = f"{served.endpoint}-data-quality"[:63]
        definition = timestamped_name(served.endpoint, "dq")
        period = "-PT1H" if frequency == "hourly" else "-PT24H"
        with translated(ProcessingFailed, f"creating the data-quality job definition {definition}"):
            self.sagemaker.create_data_quality_job_definition(**data_quality_definition(
                definition, config, served, inputs, self._output(config, served, name), self.role_arn,
                self._image(), self.instance_type))
        schedule = {"ScheduleConfig": {"ScheduleExpression": SCHEDULES[frequency],
                                       "DataAnalysisStartTime": period, "DataAnalysisEndTime": "-PT0H"},
                    "MonitoringJobDefinitionName": definition, "MonitoringType": "DataQuality"}
        exists = self._schedule_exists(name)
        with translated(ProcessingFailed, f"{'updating' if exists else 'creating'} monitoring schedule {name}"):
            if exists:
                self.sagemaker.update_monitoring_schedule(MonitoringScheduleName=name,
                                                          MonitoringScheduleConfig=schedule)
            else:
                self.sagemaker.create_monitoring_schedule(
                    MonitoringScheduleName=name, MonitoringScheduleConfig=schedule,
                    Tags=[{"Key": "modelops:model", "Value": config.name}])
        log(f"{name}: {frequency} ({SCHEDULES[frequency]}), data quality of {served.endpoint} against "
            f"v{served.package.version}'s baseline; reports under {self._output(config, served, name)}")
        return name

    # -- the machinery ----------------------------------------------------------------------------------------

    def _once(self, config: ModelConfig, served: ServedModel, kind: str, start: str, end: str,
              inputs: AnalyzerInputs, ground_truth: str | None, log) -> Execution:
        name = timestamped_name(served.endpoint, "dq" if kind == "data-quality" else "mq")
        output = self._output(config, served, name)
        if kind == "data-quality":
            create, request, monitoring_type = ("create_data_quality_job_definition", data_quality_definition(
                name, config, served, inputs, output, self.role_arn, self._image(), self.instance_type),
                "DataQuality")
        else:
            create, request, monitoring_type = ("create_model_quality_job_definition", model_quality_definition(
                name, config, served, inputs, ground_truth, output, self.role_arn, self._image(), self.instance_type,
                start, end), "ModelQuality")
        with translated(ProcessingFailed, f"creating the {kind} job definition {name}",
                        "check the execution role (SAGEMAKER_EXECUTION_ROLE_ARN) and that the endpoint captures "
                        "data; in an account Model Monitor is not open to, pass --engine notebook"):
            getattr(self.sagemaker, create)(**request)
        try:
            with translated(ProcessingFailed, f"creating the one-time monitoring schedule {name}"):
                self.sagemaker.create_monitoring_schedule(
                    MonitoringScheduleName=name, MonitoringScheduleConfig={
                        "ScheduleConfig": {"ScheduleExpression": "NOW", "DataAnalysisStartTime": start,
                                           "DataAnalysisEndTime": end},
                        "MonitoringJobDefinitionName": name, "MonitoringType": monitoring_type},
                    Tags=[{"Key": "modelops:model", "Value": config.name}])
            log(f"{name}: Model Monitor {kind} job on {served.endpoint}, window {start} to {end}")
            return self._finished(name, log)
        finally:
            self._delete(name, kind)

    def _finished(self, schedule: str, log) -> Execution:
        timeout = self.timeout_seconds or MAX_RUNTIME_SECONDS + 1800

        def latest() -> list[dict]:
            with translated(ProcessingFailed, f"listing the executions of monitoring schedule {schedule}"):
                return self.sagemaker.list_monitoring_executions(
                    MonitoringScheduleName=schedule, SortBy="CreationTime", SortOrder="Descending",
                    MaxResults=1)["MonitoringExecutionSummaries"]

        def status(summaries: list[dict]) -> str:
            return summaries[0]["MonitoringExecutionStatus"] if summaries else "Scheduled"

        # no stop: the caller deletes the schedule, and its job stops at its MaxRuntimeInSeconds
        summaries = wait_until_ended(
            latest, name=schedule, status=status, ended=DONE.__contains__, timeout=timeout,
            poll_seconds=self.poll_seconds, log=log,
            timed_out=lambda summaries: ProcessingFailed(
                f"monitoring schedule {schedule}'s execution was still {status(summaries)} after {timeout:.0f}s. Fix: "
                f"look at its processing job in the SageMaker console; the schedule is deleted, the job stops at its "
                f"MaxRuntimeInSeconds."))
        return self._execution(schedule, summaries[0])

    def _execution(self, schedule: str, summary: dict) -> Execution:
        status = summary["MonitoringExecutionStatus"]
        arn = summary.get("ProcessingJobArn") or ""
        job = arn.rsplit("/", 1)[-1]
        reason = summary.get("FailureReason")
        output = None
        if job:
            with translated(ProcessingFailed, f"describing the monitoring job {job}"):
                described = self.sagemaker.describe_processing_job(ProcessingJobName=job)
            reason = reason or described.get("FailureReason")
            outputs = described.get("ProcessingOutputConfig", {}).get("Outputs", [])
            output = outputs[0]["S3Output"]["S3Uri"].rstrip("/") if outputs else None
        if status in ("Failed", "Stopped"):
            raise ProcessingFailed(f"Model Monitor's job {job or '(none started)'} of schedule {schedule} {status}: "
                                   f"{(reason or 'no FailureReason given').rstrip('. ')}. Logs: CloudWatch "
                                   f"/aws/sagemaker/ProcessingJobs, streams {job}/*.")
        statistics = self._json(f"{output}/statistics.json", required=True) if output else {}
        violations = self._json(f"{output}/constraint_violations.json", required=False) if output else {}
        return Execution(schedule, status, job, reason, output, statistics, violations or {"violations": []})

    def _json(self, uri: str, *, required: bool) -> dict | None:
        try:
            return json.loads(self.store.get_bytes(uri))
        except StoreError:
            if required:
                raise StoreError(f"Model Monitor's job wrote no {uri}. Fix: look at its CloudWatch logs "
                                 f"(/aws/sagemaker/ProcessingJobs); an empty window writes none.") from None
            return None
        except ValueError as exc:
            raise StoreError(f"{uri} is not JSON ({exc}).") from exc

    def _delete(self, name: str, kind: str) -> None:
        """Remove a one-time schedule and its definition (best effort: a leftover costs nothing)."""
        delete = ("delete_data_quality_job_definition" if kind == "data-quality"
                  else "delete_model_quality_job_definition")
        for call, args in (("delete_monitoring_schedule", {"MonitoringScheduleName": name}),
                           (delete, {"JobDefinitionName": name})):
            try:
                getattr(self.sagemaker, call)(**args)
            except Exception:
                pass

    def _schedule_exists(self, name: str) -> bool:
        try:
            self.sagemaker.describe_monitoring_schedule(MonitoringScheduleName=name)
        except Exception as exc:
            if is_not_found(exc):
                return False
            raise ProcessingFailed(f"describing monitoring schedule {name} failed: {exc}") from exc
        return True

    def _output(self, config: ModelConfig, served: ServedModel, name: str) -> str:
        return self.store.uri(config.name, "model-monitor", served.endpoint, "reports", name)

    def _image(self) -> str:
        return analyzer_image(self.region)


def analyzer_image(region: str) -> str:
    """AWS's Model Monitor analyzer image in ``region``, as the SageMaker SDK knows it.

    Raises:
        BackendUnavailable: the SDK is not installed. ConfigError: it knows no image in that region.
    """
    from modelops.errors import BackendUnavailable

    try:
        from sagemaker.core import image_uris
    except ModuleNotFoundError as exc:
        raise BackendUnavailable("Model Monitor's image is looked up with the SageMaker SDK. Fix: pip install "
                                 "'modelops[aws]'.") from exc
    try:
        return image_uris.retrieve("model-monitor", region=region)
    except ValueError as exc:
        raise ConfigError(f"the SageMaker SDK knows no Model Monitor image in {region}: {exc}.") from exc


def window_offsets(window: Window, now: datetime | None = None) -> tuple[str, str]:
    """The window as a one-time schedule's DataAnalysisStartTime/EndTime: ISO 8601 offsets back from now.

    Raises:
        ConfigError: the window is longer than 24 hours, or starts in the future.
    """
    now = now or datetime.now(UTC)
    if window.until - window.since > MAX_WINDOW:
        raise ConfigError(f"the window {window.describe()} is longer than the 24 hours one Model Monitor job "
                          f"analyses. Fix: pass --since 24h or less (a schedule covers every hour or day), or "
                          f"read the capture in the notebook with --engine notebook.")
    start = max(0, int((now - window.since).total_seconds() // 60))
    end = max(0, int((now - window.until).total_seconds() // 60))
    return f"-PT{start}M", f"-PT{end}M"


def _resources(instance_type: str) -> dict:
    return {"ClusterConfig": {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": VOLUME_GB}}


def _endpoint_input(served: ServedModel, **extra) -> dict:
    return {"EndpointName": served.endpoint, "LocalPath": ENDPOINT_DIR, "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated", **extra}


def _outputs(output_uri: str) -> dict:
    return {"MonitoringOutputs": [{"S3Output": {"S3Uri": output_uri, "LocalPath": OUTPUT_DIR,
                                                "S3UploadMode": "EndOfJob"}}]}


def data_quality_definition(name: str, config: ModelConfig, served: ServedModel, inputs: AnalyzerInputs,
                            output_uri: str, role_arn: str, image: str, instance_type: str) -> dict:
    """The CreateDataQualityJobDefinition request, as the SDK's DefaultModelMonitor builds it."""
    return {
        "JobDefinitionName": name,
        "DataQualityBaselineConfig": {"ConstraintsResource": {"S3Uri": inputs.constraints},
                                      "StatisticsResource": {"S3Uri": inputs.statistics}},
        "DataQualityAppSpecification": {"ImageUri": image, "RecordPreprocessorSourceUri": inputs.preprocessor,
                                        "Environment": {"publish_cloudwatch_metrics": "Enabled"}},
        "DataQualityJobInput": {"EndpointInput": _endpoint_input(served)},
        "DataQualityJobOutputConfig": _outputs(output_uri),
        "JobResources": _resources(instance_type),
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Tags": [{"Key": "modelops:model", "Value": config.name}],
    }


def model_quality_definition(name: str, config: ModelConfig, served: ServedModel, inputs: AnalyzerInputs,
                             ground_truth: str, output_uri: str, role_arn: str, image: str, instance_type: str,
                             start: str, end: str) -> dict:
    """The CreateModelQualityJobDefinition request: the capture's answer (column 0 of the CSV answer) merged
    with the ground truth by event id, against the version's quality gates."""
    if config.problem_type == "binary":
        attributes = {"ProbabilityAttribute": "0", "ProbabilityThresholdAttribute": config.decision_threshold}
    else:
        attributes = {"InferenceAttribute": "0"}
    request = {
        "JobDefinitionName": name,
        "ModelQualityAppSpecification": {"ImageUri": image, "ProblemType": PROBLEM_TYPES[config.problem_type]},
        "ModelQualityJobInput": {"EndpointInput": _endpoint_input(served, StartTimeOffset=start, EndTimeOffset=end,
                                                                  **attributes),
                                 "GroundTruthS3Input": {"S3Uri": ground_truth}},
        "ModelQualityJobOutputConfig": _outputs(output_uri),
        "JobResources": _resources(instance_type),
        "RoleArn": role_arn,
        "StoppingCondition": {"MaxRuntimeInSeconds": MAX_RUNTIME_SECONDS},
        "Tags": [{"Key": "modelops:model", "Value": config.name}],
    }
    request["ModelQualityBaselineConfig"] = {"ConstraintsResource": {"S3Uri": inputs.quality_constraints}}
    return request
