"""SageMaker Model Monitor's operations answered by botocore's Stubber on the backend's own sagemaker client (moto
has none of them), for the Model Monitor tests and the least-privilege test. Requests are validated by botocore
against the service model before the stub answers; S3 stays moto's, and so do the client's other operations
(DescribeEndpoint, ...): the stub answers only Model Monitor's and the monitoring job's DescribeProcessingJob.
"""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.stub import Stubber

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
#: A monitoring execution's processing job, named as SageMaker names them (model-monitoring-<time>-<hex>).
JOB_ARN = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/model-monitoring-202612071200-abcdef"
ANALYZER_IMAGE = "156813124566.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
_DEFINITION = {"JobDefinitionArn": "arn:aws:sagemaker:us-east-1:123456789012:job-definition/x"}


#: What the stub answers; the client's other calls go on to moto.
OPERATIONS = frozenset({
    "CreateDataQualityJobDefinition", "CreateModelQualityJobDefinition", "DeleteDataQualityJobDefinition",
    "DeleteModelQualityJobDefinition", "CreateMonitoringSchedule", "DescribeMonitoringSchedule",
    "UpdateMonitoringSchedule", "DeleteMonitoringSchedule", "ListMonitoringExecutions", "DescribeProcessingJob"})


class _ModelMonitorStubber(Stubber):
    """A Stubber that answers OPERATIONS only."""

    def _assert_expected_params(self, model, params, context, **kwargs):
        if model.name in OPERATIONS:
            super()._assert_expected_params(model, params, context, **kwargs)

    def _get_response_handler(self, model, params, context, **kwargs):
        return super()._get_response_handler(model, params, context, **kwargs) if model.name in OPERATIONS else None


class ModelMonitorStub:
    """A Stubber on ``backend``'s sagemaker client; ``requests`` keeps every request by operation name."""

    def __init__(self, backend):
        self.client = backend.aws.client("sagemaker")
        self.stub = _ModelMonitorStubber(self.client)
        self.requests: dict[str, list[dict]] = {}
        self.client.meta.events.register("before-parameter-build.sagemaker.*", self.remember)

    def remember(self, params, model, **kwargs):
        self.requests.setdefault(model.name, []).append(dict(params))

    def one_time_job(self, kind: str = "DataQuality", *, output: str, status: str = "CompletedWithViolations",
                     reason: str | None = None):
        """The answers to ``ci monitor``'s one-time job of ``kind``, whose reports are under ``output``."""
        now = NOW
        self.stub.add_response(f"create_{'data' if kind == 'DataQuality' else 'model'}_quality_job_definition",
                               _DEFINITION)
        self.stub.add_response("create_monitoring_schedule", {
            "MonitoringScheduleArn": "arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/x"})
        summary = {"MonitoringScheduleName": "x", "ScheduledTime": now, "CreationTime": now, "LastModifiedTime": now}
        self.stub.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": []})
        self.stub.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [
            {**summary, "MonitoringExecutionStatus": "InProgress", "ProcessingJobArn": JOB_ARN}]})
        ended = {**summary, "MonitoringExecutionStatus": status, "ProcessingJobArn": JOB_ARN}
        if reason:
            ended["FailureReason"] = reason
        self.stub.add_response("list_monitoring_executions", {"MonitoringExecutionSummaries": [ended]})
        self.stub.add_response("describe_processing_job", {
            "ProcessingJobName": JOB_ARN.rsplit("/", 1)[-1], "ProcessingJobArn": JOB_ARN, "CreationTime": now,
            "ProcessingJobStatus": "Failed" if reason else "Completed", **({"FailureReason": reason} if reason else {}),
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                      "VolumeSizeInGB": 20}},
            "AppSpecification": {"ImageUri": ANALYZER_IMAGE},
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
                "S3Uri": output, "LocalPath": "/opt/ml/processing/output", "S3UploadMode": "EndOfJob"}}]}})
        self.stub.add_response("delete_monitoring_schedule", {})
        self.stub.add_response(f"delete_{'data' if kind == 'DataQuality' else 'model'}_quality_job_definition", {})

    def schedule(self, *, exists: bool, name: str):
        """The answers to ``ci monitor --schedule``: a new definition, then the schedule created (``exists``
        False: SageMaker does not know it) or updated."""
        arn = {"MonitoringScheduleArn": f"arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/{name}"}
        self.stub.add_response("create_data_quality_job_definition", _DEFINITION)
        if exists:
            self.stub.add_response("describe_monitoring_schedule", {
                **arn, "MonitoringScheduleName": name, "MonitoringScheduleStatus": "Scheduled",
                "CreationTime": NOW, "LastModifiedTime": NOW, "MonitoringScheduleConfig": {}})
            self.stub.add_response("update_monitoring_schedule", arn)
        else:
            self.stub.add_client_error("describe_monitoring_schedule", "ResourceNotFound", "Could not find schedule",
                                       http_status_code=404)
            self.stub.add_response("create_monitoring_schedule", arn)
