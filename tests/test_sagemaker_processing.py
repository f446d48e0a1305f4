"""The gather on a SageMaker Processing job: the request on moto (botocore validates its shape), the job's own
command run by a stand-in container, and the executed notebook coming back as the stage's artifact."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
import yaml

from ci.artifacts import Artifacts
from ci.freshness import StageContext
from ci.models import ModelFolder
from ci.remote import notebook_error, project_files, remote_for
from ci.runner import Step, execute
from ci.stages import NOTEBOOKS
from modelops.backends.sagemaker.processing import (
    CODE_ARCHIVE,
    LARGE_SOURCE_BYTES,
    PARAMETERS_FILE,
    NotebookJob,
    large_source_advice,
    processing_job_request,
    source_size,
)
from modelops.backends.sagemaker.store import split_uri
from modelops.config import parse_model_config
from modelops.config.data import ProcessingConfig
from modelops.data.datasets import dataset_id
from modelops.errors import ConfigError, NotebookFailed
from tests.support.aws import CREDENTIALS, MOTO_BUCKET, answer, remember_params, sagemaker_on_moto
from tests.support.paths import ROOT, fixture_notebook

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops-processing:1"


def model_yml(processing: dict | None = None, source: str | None = None) -> dict:
    raw = yaml.safe_load((ROOT / "abalone_model" / "model.yml").read_text())
    raw["name"] = "tiny-model"
    if processing is not None:
        raw["data"]["processing"] = processing
    if source:
        raw["data"]["source"] = source
        raw["data"].pop("sha256", None)
    return raw


def folder_with(tmp_path: Path, notebook: str, **model) -> ModelFolder:
    """A model folder whose gather_data notebook is one of the tiny fixture notebooks, or (``uses_modelops``) one
    that imports modelops and reads the folder's model.yml, as the real gather does."""
    path = tmp_path / "tiny_model"
    path.mkdir(parents=True)
    (path / "model.yml").write_text(yaml.safe_dump(model_yml(**model)))
    if notebook == "uses_modelops":
        cells = [nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["parameters"]}),
                 nbformat.v4.new_code_cell("import modelops\nimport scrapbook as sb\n\n"
                                           "config = modelops.load_model_config('.')\n"
                                           "sb.glue('doubled', x * 2)\nsb.glue('model', config.name)\n"
                                           "sb.glue('modelops', modelops.__file__)")]
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
            "name": "python3", "display_name": "Python 3", "language": "python"}}), path / "gather_data.ipynb")
    else:
        shutil.copy(fixture_notebook(notebook), path / "gather_data.ipynb")
    return ModelFolder(path)


class StandInContainer:
    """What SageMaker does once a processing job starts, which moto does not: download the inputs, run the job's
    ContainerEntrypoint (the real command, with /opt/ml moved under a temporary folder and this venv's python as
    python3), upload the output, and report the job as SageMaker would (Failed, its reason, its ExitMessage).
    Hooked on the backend's own client; the library under test is not told about it."""

    def __init__(self, backend, root: Path):
        self.backend = backend
        self.root = root
        self.requests: list[dict] = []
        self.outcome: dict[str, dict] = {}
        events = backend.aws.client("sagemaker").meta.events
        for operation in ("CreateProcessingJob", "DescribeProcessingJob"):
            events.register(f"before-parameter-build.sagemaker.{operation}", remember_params)
        events.register("after-call.sagemaker.CreateProcessingJob", self.run)
        events.register("before-call.sagemaker.DescribeProcessingJob", self.describe)

    def run(self, context, **kwargs):
        request = context["contract_params"]
        self.requests.append(request)
        opt = self.root / request["ProcessingJobName"] / "opt" / "ml"
        s3 = self.backend.aws.client("s3")
        for item in request["ProcessingInputs"]:
            local = Path(item["S3Input"]["LocalPath"].replace("/opt/ml", str(opt)))
            local.mkdir(parents=True, exist_ok=True)
            bucket, key = split_uri(item["S3Input"]["S3Uri"])
            for found in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", []):
                name = found["Key"][len(key.rsplit("/", 1)[0]):].lstrip("/")
                (local / name).write_bytes(s3.get_object(Bucket=bucket, Key=found["Key"])["Body"].read())
        script = request["AppSpecification"]["ContainerEntrypoint"][-1].replace("/opt/ml", str(opt))
        env = {**{k: v for k, v in os.environ.items() if k not in CREDENTIALS}, **request["Environment"],
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}
        done = subprocess.run(["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
        for output in request["ProcessingOutputConfig"]["Outputs"]:
            local = Path(output["S3Output"]["LocalPath"].replace("/opt/ml", str(opt)))
            bucket, key = split_uri(output["S3Output"]["S3Uri"])
            for path in sorted(local.rglob("*")) if local.is_dir() else []:
                s3.put_object(Bucket=bucket, Key=f"{key}/{path.relative_to(local).as_posix()}", Body=path.read_bytes())
        message = opt / "output" / "message"
        self.outcome[request["ProcessingJobName"]] = (
            {"ProcessingJobStatus": "Completed"} if done.returncode == 0 else
            {"ProcessingJobStatus": "Failed", "FailureReason": f"AlgorithmError: See job logs for more information "
             f"(exit code {done.returncode})", "ExitMessage": message.read_text() if message.exists() else ""})

    def describe(self, context, **kwargs):
        params = context["contract_params"]
        outcome = self.outcome.get(params["ProcessingJobName"])
        if outcome is None:
            return None  # moto answers
        return answer({"ProcessingJobName": params["ProcessingJobName"], "ProcessingJobArn": "arn:aws:sagemaker:"
                       f"us-east-1:123456789012:processing-job/{params['ProcessingJobName']}",
                       "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                                 "VolumeSizeInGB": 30}},
                       "AppSpecification": {"ImageUri": IMAGE}, "CreationTime": 0, **outcome})


def run_gather(backend, folder: ModelFolder, tmp_path: Path, parameters: dict):
    artifacts = Artifacts(tmp_path / "artifacts")
    step = Step(NOTEBOOKS["gather_data"], folder.path / "gather_data.ipynb", folder.path)
    ctx = StageContext(folder, "gather", "sagemaker", backend, artifacts, parameters, runs=[])
    remote = remote_for(step, ctx)
    assert remote is not None
    return execute(folder.name, step, parameters, artifacts, remote=remote), artifacts


@pytest.mark.slow
def test_the_gather_runs_in_the_processing_job_and_its_executed_notebook_is_the_stage_artifact(aws, tmp_path):
    backend = sagemaker_on_moto()
    stand_in = StandInContainer(backend, tmp_path / "container")
    backend.aws.client("s3").put_object(Bucket=MOTO_BUCKET, Key="raw/abalone.csv", Body=b"1,2,3\n")
    folder = folder_with(tmp_path, "uses_modelops", source=f"s3://{MOTO_BUCKET}/raw/abalone.csv",
                         processing={"instance_type": "ml.m5.xlarge", "image_uri": IMAGE})

    run, artifacts = run_gather(backend, folder, tmp_path, {"x": 21})

    assert run.status == "passed" and run.scraps["doubled"] == 42  # papermill ran it, with the parameter
    # ... on the modelops package and the model.yml the job was given, not this checkout's.
    container = tmp_path / "container"
    assert run.scraps["model"] == "tiny-model" and run.scraps["modelops"].startswith(str(container))
    assert (artifacts.root / run.ipynb).is_file() and (artifacts.root / run.html).is_file()
    [request] = stand_in.requests
    assert request["ProcessingResources"]["ClusterConfig"] == {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge",
                                                               "VolumeSizeInGB": 30}
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["source"]["S3Uri"] == f"s3://{MOTO_BUCKET}/raw/abalone.csv"
    # The job read the source where the job put it, and ran against the sagemaker backend's settings.
    parameters = json.loads((tmp_path / "container" / request["ProcessingJobName"] / "opt/ml/processing/input/code"
                             / PARAMETERS_FILE).read_text())
    assert parameters == {"x": 21, "backend": "sagemaker"}
    assert request["Environment"]["MODELOPS_DATA_DIR"] == "/opt/ml/processing/input/source"
    assert request["Environment"]["MODELOPS_S3_BUCKET"] == MOTO_BUCKET
    downloaded = container / request["ProcessingJobName"] / "opt/ml/processing/input/source/abalone.csv"
    assert downloaded.read_bytes() == b"1,2,3\n"  # where fetch_data looks first, by the source's file name
    # No credential travels: not in the job's environment, its parameters, its code, or the executed notebook.
    shipped = json.dumps(request) + (artifacts.root / run.ipynb).read_text()
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] == "testing" and '"testing"' not in shipped
    assert {k for k in request["Environment"] if k.startswith("AWS_")} == {"AWS_REGION", "AWS_DEFAULT_REGION"}


@pytest.mark.slow
def test_a_failed_notebook_in_the_job_fails_the_stage_naming_the_cell_with_the_notebook_as_far_as_it_ran(aws, tmp_path):
    backend = sagemaker_on_moto()
    stand_in = StandInContainer(backend, tmp_path / "container")
    folder = folder_with(tmp_path, "fails", processing={"image_uri": IMAGE})

    # Cell [3] and the parameters papermill injected: the message a local run gives.
    with pytest.raises(NotebookFailed, match=r"cell \[4\] \(`result = 10 / divisor`\): ZeroDivisionError") as failed:
        run_gather(backend, folder, tmp_path, {})

    assert failed.value.cause == "ZeroDivisionError"
    # papermill's last output became the job's ExitMessage, as UTF-8 within its 1 KB.
    [outcome] = stand_in.outcome.values()
    assert "ZeroDivisionError" in outcome["ExitMessage"] and len(outcome["ExitMessage"].encode()) <= 1024
    executed = tmp_path / "artifacts" / "tiny_model" / "gather_data.ipynb"
    assert executed.is_file() and notebook_error(executed)["ename"] == "ZeroDivisionError"


def test_a_job_that_fails_before_the_notebook_surfaces_its_failure_reason(aws, tmp_path):
    backend = sagemaker_on_moto()
    client = backend.aws.client("sagemaker")
    reason = "CannotStartContainerError. Please ensure the model container for variant AllTraffic starts correctly"
    client.meta.events.register("before-call.sagemaker.DescribeProcessingJob", lambda **kw: answer({
        "ProcessingJobName": "tiny-model-gather", "ProcessingJobArn": "arn:aws:sagemaker:us-east-1:"
        "123456789012:processing-job/x", "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}},
        "AppSpecification": {"ImageUri": IMAGE}, "CreationTime": 0, "ProcessingJobStatus": "Failed",
        "FailureReason": reason}))
    folder = folder_with(tmp_path, "works", processing={"image_uri": IMAGE})

    with pytest.raises(NotebookFailed, match=r"its SageMaker job: ProcessingFailed: processing job tiny-model-gather-"
                       r"\d+-[0-9a-f]+ Failed: CannotStartContainerError.*CloudWatch /aws/sagemaker/ProcessingJobs"):
        run_gather(backend, folder, tmp_path, {})


def test_the_request_is_what_botocore_accepts_and_the_code_carries_the_package_and_the_folder(aws, tmp_path):
    backend = sagemaker_on_moto()
    seen = {}
    client = backend.aws.client("sagemaker")
    client.meta.events.register("before-parameter-build.sagemaker.CreateProcessingJob", remember_params)
    client.meta.events.register("after-call.sagemaker.CreateProcessingJob",
                                lambda context, **kw: seen.update(context["contract_params"]))
    folder = folder_with(tmp_path, "works", processing={"image_uri": IMAGE, "instance_type": "ml.m5.4xlarge"})
    job = NotebookJob("tiny-model", "tiny-model-gather-1", project_files(folder.path), "tiny_model/gather_data.ipynb",
                      {"backend": "sagemaker"})

    result = backend.processor.run(job, folder.config().data.processing, log=lambda line: None)

    # moto created it after botocore validated it against the service model; nothing was executed.
    assert result.succeeded and result.notebook is None
    assert backend.aws.client("sagemaker").describe_processing_job(
        ProcessingJobName="tiny-model-gather-1")["AppSpecification"]["ImageUri"] == IMAGE
    command = seen["AppSpecification"]["ContainerEntrypoint"]
    assert command[:2] == ["/bin/bash", "-c"] and "python3 -m papermill tiny_model/gather_data.ipynb" in command[2]
    assert seen["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3UploadMode"] == "Continuous"
    code = backend.store.get_bytes(backend.store.uri("tiny-model", "processing", "tiny-model-gather-1", "code",
                                                     CODE_ARCHIVE))
    names = tarfile.open(fileobj=io.BytesIO(code)).getnames()
    assert {"modelops/__init__.py", "modelops/backends/sagemaker/processing.py", "tiny_model/model.yml",
            "tiny_model/gather_data.ipynb", PARAMETERS_FILE} <= set(names)
    assert not any("__pycache__" in name for name in names)


def test_without_an_image_the_gather_says_how_to_build_one(monkeypatch):
    monkeypatch.delenv("MODELOPS_PROCESSING_IMAGE", raising=False)
    job = NotebookJob("m", "m-gather-1", {}, "m/gather_data.ipynb", {})
    from modelops.backends.sagemaker.processing import processing_image

    with pytest.raises(ConfigError, match="infra/processing/Dockerfile.*MODELOPS_PROCESSING_IMAGE"):
        processing_image(ProcessingConfig())
    monkeypatch.setenv("MODELOPS_PROCESSING_IMAGE", IMAGE)
    request = processing_job_request(job, ProcessingConfig(), processing_image(ProcessingConfig()),
                                     "arn:aws:iam::1:role/r", "s3://b/code.tar.gz", "s3://b/out", {})
    assert request["AppSpecification"]["ImageUri"] == IMAGE


def test_a_large_s3_source_gathered_in_ci_says_which_setting_moves_it(aws, tmp_path, monkeypatch, capsys):
    backend = sagemaker_on_moto()
    backend.aws.client("s3").put_object(Bucket=MOTO_BUCKET, Key="raw/big.csv", Body=b"x" * 2048)
    assert source_size(backend.aws.client("s3"), f"s3://{MOTO_BUCKET}/raw/big.csv") == 2048
    assert source_size(backend.aws.client("s3"), "https://example.com/big.csv") is None
    assert large_source_advice(LARGE_SOURCE_BYTES, "s3://b/k") is None
    folder = folder_with(tmp_path, "works", source=f"s3://{MOTO_BUCKET}/raw/big.csv")
    monkeypatch.setattr("modelops.backends.sagemaker.processing.LARGE_SOURCE_BYTES", 1024)
    step = Step(NOTEBOOKS["gather_data"], folder.path / "gather_data.ipynb", folder.path)
    ctx = StageContext(folder, "gather", "sagemaker", backend, Artifacts(tmp_path / "a"), {}, runs=[])

    assert remote_for(step, ctx) is None  # it still runs here, as model.yml says
    assert "data.processing: {instance_type: ml.m5.4xlarge}" in capsys.readouterr().err
    local = StageContext(folder, "gather", "local", backend, Artifacts(tmp_path / "a"), {}, runs=[])
    assert remote_for(step, local) is None and capsys.readouterr().err == ""


def test_data_processing_is_parsed_checked_and_leaves_the_dataset_id_alone():
    plain = parse_model_config(model_yml())
    moved = parse_model_config(model_yml(processing={"instance_type": "ml.m5.2xlarge"}))
    assert plain.data.processing is None
    assert moved.data.processing == ProcessingConfig(instance_type="ml.m5.2xlarge")
    assert dataset_id(plain, "a" * 64) == dataset_id(moved, "a" * 64)
    with pytest.raises(ConfigError, match="data.processing.instance_count.*Fix: set it to 1"):
        parse_model_config(model_yml(processing={"instance_count": 2}))
    with pytest.raises(ConfigError, match="processing"):
        parse_model_config(model_yml(processing={"instance_type": "m5.large"}))


def test_whether_the_dataset_is_gathered_is_decided_without_reading_the_source_here(aws, tmp_path, monkeypatch):
    from ci import freshness

    def no_download(*args, **kwargs):
        raise AssertionError("the CI job read the source that the Processing job is there to read")

    monkeypatch.setattr("modelops.data.datasets.fetch_data", no_download)
    looked_up = []
    monkeypatch.setattr("modelops.data.datasets.find_dataset", lambda store, config, sha256, *rest: looked_up.append(
        sha256))
    backend = sagemaker_on_moto()
    pinned = folder_with(tmp_path, "works", processing={"image_uri": IMAGE})  # abalone's model.yml pins sha256
    ctx = StageContext(pinned, "train", "sagemaker", backend, Artifacts(tmp_path / "a"), {}, runs=[])
    assert freshness.gathered(ctx, {}) is None and looked_up == [pinned.config().data.sha256]
    assert freshness.gathered(ctx, {"source": "s3://b/other.csv"}) is None and len(looked_up) == 1
    unpinned = folder_with(tmp_path / "u", "works", processing={"image_uri": IMAGE}, source="s3://b/raw.csv")
    ctx = StageContext(unpinned, "train", "sagemaker", backend, Artifacts(tmp_path / "a"), {}, runs=[])
    assert freshness.gathered(ctx, {}) is None and len(looked_up) == 1  # the job runs, and finds out itself
