"""A notebook executed by papermill inside a SageMaker Processing job: the gather where the data is, not in CI.

The job runs the image the project builds from ``infra/processing/Dockerfile`` (Python, papermill, the kernel and
the project's dependencies, pinned; the project's own code is not in it). What changes with every commit, the
``modelops`` package, the model folder and the run's parameters, travels as one ``code.tar.gz`` input, so the
image is rebuilt only when the dependencies change, and the job needs no network but S3 (no PyPI, no GitHub):
it can run in a VPC without a NAT, with an S3 gateway endpoint.

Inside the job, the notebook runs with ``backend = "sagemaker"`` and the job's execution role: it writes the
dataset to the store itself, exactly as when it runs in CI. The executed notebook is written under
``/opt/ml/processing/output/notebook/`` and uploaded continuously, so a job that fails mid-notebook still hands
back the notebook as far as it ran. No credential is a parameter or an environment variable of the job.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from modelops.backends.sagemaker.aws import translated
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.store import S3Store
from modelops.config.data import ProcessingConfig
from modelops.errors import ConfigError, ProcessingFailed, StoreError
from modelops.settings import DATA_DIR_ENV

ROOT = "/opt/ml/processing"
CODE_DIR = f"{ROOT}/input/code"
SOURCE_DIR = f"{ROOT}/input/source"
NOTEBOOK_DIR = f"{ROOT}/output/notebook"
CODE_ARCHIVE = "code.tar.gz"
PARAMETERS_FILE = "parameters.json"
#: Where the dependencies image comes from when model.yml's data.processing.image_uri does not say.
IMAGE_ENV = "MODELOPS_PROCESSING_IMAGE"
#: A source in S3 bigger than this makes the gather say, in its first line, how to move it to a Processing job:
#: The gather holds many times its CSV in memory (benchmarks/README.md), and a CircleCI medium job has 4 GB.
LARGE_SOURCE_BYTES = 1 << 30

#: The end of papermill's log, as UTF-8 (SageMaker fails a job whose message file is not) within the 1 KB of
#: ExitMessage ("Save and Access Metadata Information About Your Processing Job": DescribeProcessingJob's
#: ExitMessage is the first 1 KB of /opt/ml/output/message).
_TAIL = ("import sys; t = open('/tmp/papermill.log', 'rb').read()[-900:].decode('utf-8', 'ignore'); "
         "open('/opt/ml/output/message', 'w', encoding='utf-8').write(t)")
#: The job's command: unpack the code, then papermill with the parameters file; papermill's own exit status
#: (1 on a failed cell) is the job's, and on a failure its last lines become the job's ExitMessage.
ENTRYPOINT_SCRIPT = (
    "set -o pipefail; cd {code} && tar -xzf {archive} && "
    "export PYTHONPATH={code}${{PYTHONPATH:+:$PYTHONPATH}} && "
    "mkdir -p {out} /opt/ml/output && "
    "python3 -m papermill {notebook} {out}/{name} -k python3 --cwd {cwd} -f {parameters} --log-output "
    "--request-save-on-cell-execute 2>&1 | tee /tmp/papermill.log; status=$?; "
    "[ $status -eq 0 ] || python3 -c \"" + _TAIL + "\"; exit $status"
)


@dataclass(frozen=True)
class NotebookJob:
    """What one notebook run in a Processing job needs: its code, where it sits in it, and its parameters."""

    model: str
    job_name: str
    files: dict[str, bytes]  # archive path -> bytes: the modelops package and the model folder (ci.remote)
    notebook: str  # its path inside the archive, e.g. abalone_model/gather_data.ipynb
    parameters: dict
    source_uri: str | None = None  # an s3:// source handed to the job as an input (its local path is a parameter)


@dataclass(frozen=True)
class NotebookJobResult:
    """A finished job: its status and reason, and the executed notebook (None if it never got that far)."""

    job_name: str
    status: str
    failure_reason: str | None
    exit_message: str | None
    notebook: bytes | None
    notebook_uri: str

    @property
    def succeeded(self) -> bool:
        return self.status == "Completed"

    def describe_failure(self) -> str:
        reason = (self.failure_reason or "no FailureReason given").rstrip(". ")
        message = f" Its last output: {self.exit_message.strip()}" if self.exit_message else ""
        return (f"processing job {self.job_name} {self.status}: {reason}.{message} Logs: CloudWatch "
                f"/aws/sagemaker/ProcessingJobs, streams {self.job_name}/*.")


class NotebookProcessor:
    """Runs a notebook with papermill in a SageMaker Processing job and brings the executed notebook back."""

    def __init__(self, sagemaker_client, store: S3Store, role_arn: str, environment: dict[str, str], *,
                 poll_seconds: float = 15, timeout_seconds: float | None = None):
        self.sagemaker = sagemaker_client
        self.store = store
        self.role_arn = role_arn
        self.environment = environment  # the backend's settings for the notebook inside (no credentials)
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def run(self, job: NotebookJob, compute: ProcessingConfig, *, log=print) -> NotebookJobResult:
        """Upload the code, create the job, wait for it, and fetch the executed notebook.

        Raises:
            ConfigError: no image to run (model.yml and $MODELOPS_PROCESSING_IMAGE say none).
            ProcessingFailed: the job could not be created, or did not end in time (it is then stopped).
            StoreError: the code could not be uploaded.
        """
        image = processing_image(compute)
        prefix = self.store.uri(job.model, "processing", job.job_name)
        code = code_archive(job.files, job_parameters(job))
        code_uri = self.store.put_bytes(f"{prefix}/code/{CODE_ARCHIVE}", code, content_type="application/gzip").uri
        request = processing_job_request(job, compute, image, self.role_arn, code_uri, f"{prefix}/output/notebook",
                                         self.environment)
        with translated(ProcessingFailed, f"creating processing job {job.job_name}",
                        "check the execution role (SAGEMAKER_EXECUTION_ROLE_ARN), the image URI and the account's "
                        "processing instance quota"):
            self.sagemaker.create_processing_job(**request)
        log(f"{job.job_name}: created ({compute.instance_count} x {compute.instance_type}, {image})")
        described = self._wait(job.job_name, compute, log)
        notebook_uri = f"{prefix}/output/notebook/{Path(job.notebook).name}"
        try:
            notebook = self.store.get_bytes(notebook_uri)
        except StoreError:
            notebook = None  # the job ended before papermill wrote anything
        return NotebookJobResult(job.job_name, described["ProcessingJobStatus"], described.get("FailureReason"),
                                 described.get("ExitMessage"), notebook, notebook_uri)

    def _wait(self, job_name: str, compute: ProcessingConfig, log) -> dict:
        timeout = self.timeout_seconds or compute.max_runtime_seconds + 1800

        def describe() -> dict:
            with translated(ProcessingFailed, f"describing processing job {job_name}"):
                return self.sagemaker.describe_processing_job(ProcessingJobName=job_name)

        return wait_until_ended(
            describe, name=job_name, status=lambda described: described["ProcessingJobStatus"],
            timeout=timeout, poll_seconds=self.poll_seconds, log=log,
            stop=lambda: self.sagemaker.stop_processing_job(ProcessingJobName=job_name),
            timed_out=lambda described: ProcessingFailed(
                f"processing job {job_name} was still {described['ProcessingJobStatus']} after {timeout:.0f}s; it "
                f"was asked to stop so it costs nothing more. Fix: raise data.processing.max_runtime_seconds in "
                f"model.yml, or read its CloudWatch logs (/aws/sagemaker/ProcessingJobs)."))


def processing_image(compute: ProcessingConfig) -> str:
    """The dependencies image: model.yml's ``data.processing.image_uri``, else ``$MODELOPS_PROCESSING_IMAGE``.

    Raises:
        ConfigError: neither is set.
    """
    import os

    image = compute.image_uri or os.environ.get(IMAGE_ENV, "").strip()
    if not image:
        raise ConfigError(f"data.processing in model.yml runs the gather in a SageMaker Processing job, and no image "
                          f"was given for it. Fix: build and push infra/processing/Dockerfile (docs/scaling.md), then "
                          f"export {IMAGE_ENV}=ACCOUNT.dkr.ecr.REGION.amazonaws.com/modelops-processing:TAG or set "
                          f"data.processing.image_uri.")
    return image


def processing_job_request(job: NotebookJob, compute: ProcessingConfig, image: str, role_arn: str, code_uri: str,
                           notebook_output_uri: str, environment: dict[str, str]) -> dict:
    """The CreateProcessingJob request that runs ``job.notebook`` with papermill on ``compute``."""
    inputs = [{"InputName": "code", "S3Input": {
        "S3Uri": code_uri, "LocalPath": CODE_DIR, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "FullyReplicated"}}]
    if job.source_uri:
        key = job.source_uri.rstrip("/")
        inputs.append({"InputName": "source", "S3Input": {
            "S3Uri": key, "LocalPath": SOURCE_DIR, "S3DataType": "S3Prefix", "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated"}})
    notebook = Path(job.notebook)
    script = ENTRYPOINT_SCRIPT.format(code=CODE_DIR, archive=CODE_ARCHIVE, out=NOTEBOOK_DIR, notebook=job.notebook,
                                      name=notebook.name, cwd=notebook.parent.as_posix() or ".",
                                      parameters=PARAMETERS_FILE)
    return {
        "ProcessingJobName": job.job_name,
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "notebook", "S3Output": {
            "S3Uri": notebook_output_uri, "LocalPath": NOTEBOOK_DIR, "S3UploadMode": "Continuous"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": compute.instance_count,
                                                  "InstanceType": compute.instance_type,
                                                  "VolumeSizeInGB": compute.volume_size_gb}},
        "StoppingCondition": {"MaxRuntimeInSeconds": compute.max_runtime_seconds},
        "AppSpecification": {"ImageUri": image, "ContainerEntrypoint": ["/bin/bash", "-c", script]},
        "Environment": {**environment, "MODELOPS_PROCESSING_JOB": job.job_name,
                        **({DATA_DIR_ENV: SOURCE_DIR} if job.source_uri else {})},
        "RoleArn": role_arn,
        "Tags": [{"Key": "modelops:model", "Value": job.model}],
    }


def job_parameters(job: NotebookJob) -> dict:
    """The notebook's parameters inside the job: the run's own. An S3 source is not rewritten to its local copy:
    the job's ``MODELOPS_DATA_DIR`` is where it was downloaded, so the notebook finds it there by name, checks it
    against data.sha256 as anywhere else, and records the S3 URI as the dataset's source."""
    return dict(job.parameters)


def code_archive(files: dict[str, bytes], parameters: dict) -> bytes:
    """A reproducible tar.gz of ``files`` (archive path -> bytes) and the run's parameters file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as archive:
        for name, body in sorted({**files, PARAMETERS_FILE: json.dumps(parameters, sort_keys=True).encode()}.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def source_size(s3_client, source: str) -> int | None:
    """The bytes under an ``s3://`` source (an object or a prefix); None for other sources or when unreadable."""
    if not source.startswith("s3://"):
        return None
    from modelops.backends.sagemaker.store import split_uri

    bucket, key = split_uri(source)
    try:
        total = 0
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            total += sum(int(o["Size"]) for o in page.get("Contents", ()) if o["Key"] == key
                         or o["Key"].startswith(key.rstrip("/") + "/"))
        return total
    except Exception:  # a hint only: the gather itself reports what it cannot read
        return None


def large_source_advice(size: int | None, source: str) -> str | None:
    """The line a gather in CI starts with when its S3 source is too large for a CI job's memory."""
    if size is None or size <= LARGE_SOURCE_BYTES:
        return None
    return (f"the source {source} holds {size / 2**30:.1f} GiB, more than this CI job should read into memory "
            f"(the gather holds many times a CSV's size; threshold {LARGE_SOURCE_BYTES / 2**30:.0f} GiB). Fix: add "
            f"data.processing: {{instance_type: ml.m5.4xlarge}} to model.yml to gather in a SageMaker Processing "
            f"job (docs/scaling.md).")


__all__ = ["NotebookJob", "NotebookJobResult", "NotebookProcessor", "code_archive", "job_parameters",
           "large_source_advice", "processing_image", "processing_job_request", "source_size"]
