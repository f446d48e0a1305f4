"""SageMaker batch scoring: a batch transform job on the package's container, its table and answers in S3.

A model is created from the package as the endpoints create one (``ModelPackageName`` and the container's
environment from model.yml ``serving``), the job splits the table at line ends into requests of up to
``MaxPayloadInMB`` (``SplitType=Line``, ``BatchStrategy=MultiRecord``) and joins the answers line by line
(``AssembleWith=Line``); the model goes once the job has ended. A local table is uploaded first (raw records
encoded here first, as ``ci invoke --raw`` does), and the answers are downloaded for a local ``--output``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from modelops.backends.base import Transformer
from modelops.backends.sagemaker.aws import describe_error, translated
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.store import S3Store, split_uri
from modelops.container import CSV
from modelops.entities import TransformResult, TransformSpec
from modelops.errors import StoreError, TransformFailed

LOG_GROUP = "/aws/sagemaker/TransformJobs"
#: The object a local table is uploaded as (its answers are ``<it>.out``).
INPUT_NAME = "rows.csv"


class SageMakerTransformer(Transformer):
    """Runs a batch transform job over one CSV object and delivers its answers where the caller asked."""

    def __init__(self, sagemaker_client, store: S3Store, role_arn: str, *, poll_seconds: float = 15,
                 timeout_seconds: float = 24 * 3600):
        self.sagemaker = sagemaker_client
        self.store = store
        self.role_arn = role_arn
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def transform(self, spec: TransformSpec, *, log=print) -> TransformResult:
        started = time.monotonic()
        root = self.store.uri(spec.model, "transform", spec.job_name)
        manifest = self._manifest(self._input(spec, root, log), root)
        output_path = f"{root}/output"
        self._create_model(spec)
        try:
            with translated(TransformFailed, f"creating batch transform job {spec.job_name}",
                            "check the execution role (SAGEMAKER_EXECUTION_ROLE_ARN) may read the input and write "
                            "the output, and the account's transform instance quota"):
                self.sagemaker.create_transform_job(**transform_job_request(spec, manifest, output_path))
            log(f"{spec.job_name}: created ({spec.instance_count} x {spec.instance_type}, {spec.package.label})")
            job = self._wait(spec.job_name, log)
        finally:
            self._delete_model(spec.job_name)
        if job["TransformJobStatus"] != "Completed":
            reason = (job.get("FailureReason") or "no FailureReason given").rstrip(". ")
            raise TransformFailed(f"batch transform job {spec.job_name} {job['TransformJobStatus']}: {reason}. Logs: "
                                  f"CloudWatch {LOG_GROUP}, streams {spec.job_name}/*; its input: {manifest}.")
        answers = self._answers(spec.job_name, output_path)
        self._deliver(answers, spec.output_uri)
        seconds = time.monotonic() - started
        log(f"{spec.job_name}: Completed in {seconds:.0f}s; answers in {spec.output_uri}")
        return TransformResult(spec.job_name, spec.package.version, spec.output_uri, None, seconds,
                               {"transform_job_arn": job.get("TransformJobArn"), "answers": answers})

    def _input(self, spec: TransformSpec, root: str, log) -> str:
        """The S3 object holding the feature rows: the caller's, or a local table (encoded if raw) uploaded."""
        remote = spec.input_uri.startswith("s3://")
        if remote and spec.encode is None:
            if not self.store.exists(spec.input_uri):
                raise StoreError(f"no object at {spec.input_uri}. Fix: name one CSV object of rows to score.")
            return spec.input_uri
        uri = f"{root}/input/{INPUT_NAME}"
        with tempfile.TemporaryDirectory(prefix="modelops-transform-") as folder:
            path = Path(spec.input_uri)
            if remote:
                path = self.store.get_file(spec.input_uri, Path(folder) / "records.csv")
            elif not path.is_file():
                raise StoreError(f"no input file {path}. Fix: name a CSV file of rows to score.")
            if spec.encode is not None:
                from modelops.serving import batch

                encoded = Path(folder) / INPUT_NAME
                chunks = batch.record_chunks(path, spec.encode, spec.chunk_bytes or batch.CHUNK_BYTES)
                with open(encoded, "wb") as sink:
                    rows = batch.write_features(chunks, sink)
                log(f"{spec.job_name}: {rows:,} raw records encoded as the model's feature rows")
                path = encoded
            self.store.put_file(uri, path, content_type=CSV)
        log(f"{spec.job_name}: input uploaded to {uri}")
        return uri

    def _manifest(self, input_uri: str, root: str) -> str:
        """A manifest naming exactly the one object (an S3 prefix would also take every key that begins alike)."""
        folder, _, name = input_uri.rpartition("/")
        uri = f"{root}/input.manifest"
        self.store.put_bytes(uri, json.dumps([{"prefix": folder + "/"}, name]).encode(),
                             content_type="application/json")
        return uri

    def _create_model(self, spec: TransformSpec) -> None:
        container = {"ModelPackageName": spec.package.package_id,
                     **({"Environment": spec.environment} if spec.environment else {})}
        with translated(TransformFailed, f"creating model {spec.job_name} from {spec.package.label}",
                        "the package must be Approved and the execution role able to read its artifact"):
            self.sagemaker.create_model(ModelName=spec.job_name, ExecutionRoleArn=self.role_arn,
                                        PrimaryContainer=container, Tags=_tags(spec))

    def _delete_model(self, name: str) -> None:
        try:
            self.sagemaker.delete_model(ModelName=name)
        except Exception:  # best effort: the job's outcome is what the caller must see; the model costs nothing
            pass

    def _wait(self, job_name: str, log) -> dict:
        def describe() -> dict:
            with translated(TransformFailed, f"describing batch transform job {job_name}"):
                return self.sagemaker.describe_transform_job(TransformJobName=job_name)

        return wait_until_ended(
            describe, name=job_name, status=lambda job: job["TransformJobStatus"],
            timeout=self.timeout_seconds, poll_seconds=self.poll_seconds, log=log,
            stop=lambda: self.sagemaker.stop_transform_job(TransformJobName=job_name),
            timed_out=lambda job: TransformFailed(
                f"batch transform job {job_name} was still {job['TransformJobStatus']} after "
                f"{self.timeout_seconds:.0f}s; it was asked to stop. Fix: look at its CloudWatch logs ({LOG_GROUP}), "
                f"or use more instances (model.yml environments)."))

    def _answers(self, job_name: str, output_path: str) -> str:
        found = [o.uri for o in self.store.list_objects(output_path) if o.uri.endswith(".out")]
        if len(found) != 1:
            raise TransformFailed(f"batch transform job {job_name} Completed, but {output_path} holds "
                                  f"{len(found)} answer objects (.out) where one was expected: {found[:5]}.")
        return found[0]

    def _deliver(self, answers: str, output_uri: str) -> None:
        """The answers object to ``output_uri``: downloaded (atomically) or copied within S3."""
        if not output_uri.startswith("s3://"):
            self.store.get_file(answers, Path(output_uri))
            return
        source, target = split_uri(answers), split_uri(output_uri)
        try:  # a managed copy: multipart past 5 GB, done by S3 without the bytes coming here
            self.store.s3.copy({"Bucket": source[0], "Key": source[1]}, *target)
        except Exception as exc:
            raise StoreError(f"could not copy the answers {answers} to {output_uri}: {describe_error(exc)}. Fix: "
                             f"check the credentials may write there (s3:PutObject); the answers stay at "
                             f"{answers}.") from exc


def transform_job_request(spec: TransformSpec, manifest_uri: str, output_path: str) -> dict:
    """The CreateTransformJob request: the container's CSV in and out, split and joined at line ends."""
    return {
        "TransformJobName": spec.job_name,
        "ModelName": spec.job_name,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": spec.max_payload_mb,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": manifest_uri}},
                           "ContentType": CSV, "CompressionType": "None", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": output_path, "Accept": CSV, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count},
        "Tags": _tags(spec),
    }


def _tags(spec: TransformSpec) -> list[dict]:
    return [{"Key": "modelops:model", "Value": spec.model},
            {"Key": "modelops:version", "Value": str(spec.package.version)}]
