"""The sagemaker backend's test doubles shared by its suites: a training result, a registered and an approved
package, and the endpoint descriptions and tags a Stubber answers with where moto lacks UpdateEndpoint."""

from __future__ import annotations

from datetime import UTC, datetime

from botocore.stub import ANY

from modelops.backends.sagemaker.endpoints import PREVIOUS_CONFIG_TAG, PREVIOUS_VERSION_TAG, VERSION_TAG
from modelops.entities import Lineage, PackageVersion, TrainingResult, TrainingSpec
from tests.support.aws import MOTO_BUCKET, MOTO_ROLE

REGION = "us-east-1"
ACCOUNT = "123456789012"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


def spec_for(store, job: str = "abalone-model-20261126-163000-beef", **overrides) -> TrainingSpec:
    root = store.uri("abalone-model", "datasets", "d1")
    values = dict(model="abalone-model", job_name=job, container_version="3.2-0",
                  hyperparameters={"objective": "reg:squarederror", "num_round": 3, "eta": 0.2, "eval_metric": "rmse"},
                  train_uri=f"{root}/train/", validation_uri=f"{root}/validation/",
                  output_uri=store.uri("abalone-model", "training", job), max_runtime_seconds=600)
    return TrainingSpec(**{**values, **overrides})


def trained(job: str = "abalone-model-20261126-163000-beef", sha256: str = "a" * 64) -> TrainingResult:
    return TrainingResult(job_name=job, artifact_uri=f"s3://{MOTO_BUCKET}/modelops/abalone-model/training/{job}/"
                          f"output/model.tar.gz", artifact_sha256=sha256, image=XGBOOST_IMAGE,
                          container_version="3.2-0", xgboost_version="3.2",
                          hyperparameters={"num_round": 50, "objective": "reg:squarederror", "eta": 0.2},
                          eval_metric="rmse", curves={}, rounds=50, best_iteration=None, duration_seconds=1.0)


LINEAGE = Lineage(git_commit="c" * 40, branch="feature/x", tree_hash="t" * 40, dirty=False,
                  model_folder="abalone_model", notebook_artifact="abalone_model/train_register.html")


def register(registry, **kwargs) -> PackageVersion:
    return registry.register("abalone-model", training=kwargs.pop("training", trained()),
                             metrics={"rmse": 2.13, "r2": 0.55, "null_rmse": 3.2}, data_sha256="d" * 64,
                             dataset_id="ds1", lineage=LINEAGE, description="abalone rings", **kwargs)


def approved_package(backend, job: str = "abalone-model-20261126-163000-beef", body: bytes = b"model v1"):
    artifact = backend.store.put_bytes(trained(job).artifact_uri, body)
    package = register(backend.registry, training=trained(job, artifact.sha256))
    return backend.registry.approve(package.group, package.version, by="alice")


ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/abalone-model"
CONFIG_V1 = "abalone-model-v1-20261125090000-aaaa"
CONFIG_V2 = "abalone-model-v2-20261126163000-bbbb"


def described_endpoint(config: str, status: str = "InService", **extra) -> dict:
    now = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    return {"EndpointName": "abalone-model", "EndpointArn": ENDPOINT_ARN, "EndpointConfigName": config,
            "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now, **extra}


def endpoint_tags(version: int, previous: tuple[int, str] | None = None) -> dict:
    tags = [{"Key": "modelops:endpoint", "Value": "abalone-model"}, {"Key": VERSION_TAG, "Value": str(version)}]
    if previous:
        tags += [{"Key": PREVIOUS_VERSION_TAG, "Value": str(previous[0])},
                 {"Key": PREVIOUS_CONFIG_TAG, "Value": previous[1]}]
    return {"Tags": tags}


def expect_new_model_and_config(stub, package) -> None:
    stub.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/m"},
                      {"ModelName": ANY, "ExecutionRoleArn": MOTO_ROLE, "Tags": ANY,
                       "PrimaryContainer": {"ModelPackageName": package.package_id}})
    stub.add_response("create_endpoint_config", {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
                                                                       f"endpoint-config/c"},
                      {"EndpointConfigName": ANY, "Tags": ANY, "ProductionVariants": ANY})


def package_v2(sagemaker, monkeypatch) -> PackageVersion:
    """Version 2, approved; its model and endpoint config will be called CONFIG_V2."""
    monkeypatch.setattr("modelops.backends.sagemaker.endpoints.timestamped_name", lambda *parts: CONFIG_V2)
    approved_package(sagemaker)
    return approved_package(sagemaker, "abalone-model-20261126-170000-cafe", b"model v2")
