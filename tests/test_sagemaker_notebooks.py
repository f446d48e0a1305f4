"""The abalone notebooks with backend="sagemaker", end to end against moto's server on 127.0.0.1."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import pandas as pd
import pytest

from ci.artifacts import Artifacts
from ci.models import resolve_model_dir
from ci.runner import run_stage
from modelops.entities import PENDING
from tests.support.paths import ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REGION = "us-east-1"
BUCKET = "modelops-e2e"
# Fake credentials: if either shows up in an executed notebook or any other artifact, a secret leaked.
ACCESS_KEY = "AKIAFAKEKEY000000077"
SECRET_KEY = "fake/secret+Key0123456789abcdefghijklmnoq"


class StandInContainer:
    """Does what the SageMaker XGBoost container does once a training job starts, which moto does not.

    moto marks a training job Completed the moment it is created and writes nothing. Wrapped around moto's
    CreateTrainingJob, this reads the job's train and validation channels from (moto's) S3, trains with
    modelops.training.train (the container's semantics), writes ``model.tar.gz`` where the job says its artifact
    is and the per-round log lines to CloudWatch. The library under test is not told about any of this.
    """

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url
        self.jobs: list[str] = []

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    def wrap(self, create_training_job):
        def create_and_run(backend, training_job_name, hyper_parameters, *args, **kwargs):
            job = create_training_job(backend, training_job_name, hyper_parameters, *args, **kwargs)
            self.run(job)
            return job

        return create_and_run

    def run(self, job) -> None:
        from modelops.training.train import fit, pack_model

        s3 = self.client("s3")
        channels = {c["ChannelName"]: self.read_channel(s3, c["DataSource"]["S3DataSource"]["S3Uri"])
                    for c in job.input_data_config}
        hyperparameters = {k: _number(v) for k, v in job.hyper_parameters.items()}
        result = fit(*channels["train"], *channels["validation"], hyperparameters)
        bucket, key = job.model_artifacts["S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
        s3.put_object(Bucket=bucket, Key=key, Body=pack_model(result.booster))
        logs = self.client("logs")
        group, stream = "/aws/sagemaker/TrainingJobs", f"{job.training_job_name}/algo-1-1764174600"
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": now + i, "message": line} for i, line in enumerate(result.log_lines)])
        self.jobs.append(job.training_job_name)

    @staticmethod
    def read_channel(s3, uri: str):
        bucket, prefix = uri.removeprefix("s3://").split("/", 1)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        frame = pd.concat([pd.read_csv(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read()), header=None)
                           for k in keys if k.endswith(".csv")])
        values = frame.to_numpy(dtype="float64")
        return values[:, 1:], values[:, 0]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@pytest.fixture
def moto_server(home, monkeypatch):
    """moto's server on 127.0.0.1 with a bucket and an execution role; the kernels see only environment."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.sagemaker.models import SageMakerModelBackend

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's state lives in this process: start from an empty account whatever ran before.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MODELOPS_S3_PREFIX", "MODELOPS_SAGEMAKER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "SAGEMAKER_VALIDATE_ROLE": "false",
                        "MODELOPS_S3_BUCKET": BUCKET}.items():
        monkeypatch.setenv(name, value)
    role = boto3.client("iam").create_role(RoleName="modelops-sagemaker", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.setenv("SAGEMAKER_EXECUTION_ROLE_ARN", role)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    container = StandInContainer(url)
    monkeypatch.setattr(SageMakerModelBackend, "create_training_job",
                        container.wrap(SageMakerModelBackend.create_training_job))
    yield container
    server.stop()


def test_gather_train_register_and_review_run_on_sagemaker(moto_server, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    runs = run_stage(resolve_model_dir(ROOT / "abalone_model"), "train", backend="sagemaker", artifacts=artifacts)

    assert [(r.notebook, r.status) for r in runs] == [("gather_data", "passed"), ("train_register", "passed"),
                                                      ("review", "passed")]
    gather, train, _ = (r.scraps for r in runs)
    assert gather["rows_train"] == 2924 and gather["n_features"] == 10
    assert 2.0 < train["rmse"] < 2.35 and train["status"] == PENDING and train["version"] == 1
    executed = (tmp_path / "artifacts" / "abalone_model" / "train_register.ipynb").read_text()
    assert "Completed / Completed" in executed  # the job's status, streamed into the notebook
    assert "289 rounds" in executed and "final validation rmse" in executed  # curves from the job's log
    assert train["package_id"].startswith(f"arn:aws:sagemaker:{REGION}:123456789012:model-package/abalone-model/")
    [job] = moto_server.jobs

    sagemaker = boto3.client("sagemaker")
    package = sagemaker.describe_model_package(ModelPackageName=train["package_id"])
    assert package["ModelApprovalStatus"] == PENDING
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == (
        f"s3://{BUCKET}/modelops/abalone-model/training/{job}/output/model.tar.gz")
    assert package["CustomerMetadataProperties"]["artifact_sha256"] == train["artifact_sha256"]
    assert package["CustomerMetadataProperties"]["lineage:notebook_artifact"] == '"abalone_model/train_register.html"'
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert f"modelops/abalone-model/evaluation/{job}/report.json" in keys
    assert "modelops/abalone-model/datasets/latest.json" in keys

    scanned = 0
    for path in (tmp_path / "artifacts").rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            scanned += 1
            assert ACCESS_KEY.encode() not in text and SECRET_KEY.encode() not in text, f"a credential leaked: {path}"
    assert scanned >= 6  # three executed notebooks and their HTML, metrics, the run log
    s3 = boto3.client("s3")
    for key in keys:  # and what the notebooks wrote to S3: manifests, splits, reports, the training log
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert ACCESS_KEY.encode() not in body and SECRET_KEY.encode() not in body, f"a credential leaked: {key}"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ci", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env or dict(os.environ))


def test_registry_commands_work_on_sagemaker_and_a_missing_role_is_one_line(moto_server):
    from modelops.backends import get_backend
    from modelops.review.lineage import working_tree_hash
    from tests.support.registry import register

    register(get_backend("sagemaker").registry, tree=working_tree_hash(ROOT / "abalone_model"))
    approved = cli("approve", "abalone_model", "--by", "alice", "--note", "reviewed", "--backend", "sagemaker")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.startswith("abalone-model v1: Approved by alice at ")
    listing = cli("registry", "abalone_model", "--backend", "sagemaker")
    assert listing.returncode == 0 and " Approved " in listing.stdout and "alice" in listing.stdout

    unset = cli("registry", "abalone_model", "--backend", "sagemaker",
                env={k: v for k, v in os.environ.items() if k != "SAGEMAKER_EXECUTION_ROLE_ARN"})
    assert unset.returncode == 2 and "no SageMaker execution role" in unset.stderr
    assert "Traceback" not in unset.stderr and len(unset.stderr.strip().splitlines()) == 1
