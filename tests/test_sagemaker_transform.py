"""Batch scoring on the sagemaker backend: a batch transform job on the package, its table and answers in S3.

moto 5.2.6 implements CreateTransformJob and DescribeTransformJob (a job is Completed at once) but writes no
answers: tests/support/batch.py writes them as the container does. A job that fails is answered by a Stubber on
the SageMaker client, which checks each request against botocore's service model and the parameters expected here.
"""

from __future__ import annotations

import boto3
import botocore.session
import numpy as np
import pandas as pd
import pytest
import xgboost
from botocore.stub import ANY, Stubber
from botocore.validate import ParamValidator

from modelops.backends.sagemaker.transformer import transform_job_request
from modelops.entities import PackageVersion, TransformSpec
from modelops.errors import StoreError, TransformFailed
from modelops.serving import protocol
from modelops.training.train import pack_model
from tests.support.aws import MOTO_BUCKET, MOTO_ROLE
from tests.support.batch import BatchTransform
from tests.support.sagemaker import LINEAGE, register, trained

pytestmark = pytest.mark.slow  # moto end to end

RNG = np.random.default_rng(7)
ROWS = np.round(RNG.normal(size=(3000, 4)), 3)
ROWS[::17, 2] = np.nan


def booster():
    labels = np.nan_to_num(ROWS) @ [1, 2, 0, -1]
    return xgboost.train({"objective": "reg:squarederror", "max_depth": 3}, xgboost.DMatrix(ROWS, labels), 8)


def served(sagemaker):
    """An approved package of a real (small) booster, its artifact in moto's S3."""
    model = booster()
    job = "abalone-model-20261207-120000-feed"
    artifact = sagemaker.store.put_bytes(trained(job).artifact_uri, pack_model(model))
    package = register(sagemaker.registry, training=trained(job, artifact.sha256))
    return sagemaker.registry.approve(package.group, package.version, by="alice"), model


def spec(package, input_uri, output_uri, **options) -> TransformSpec:
    return TransformSpec("abalone-model", "abalone-model-v1-20261207-120000-beef", package, input_uri, output_uri,
                         **options)


def test_a_local_table_is_uploaded_scored_by_a_job_on_the_package_and_its_answers_downloaded(sagemaker, tmp_path):
    package, model = served(sagemaker)
    stand_in = BatchTransform(sagemaker.transformer.sagemaker)
    source, target = tmp_path / "rows.csv", tmp_path / "answers.csv"
    rows = np.tile(ROWS, (16, 1))  # 1.3 MB as CSV: two requests at MaxPayloadInMB=1
    source.write_bytes(protocol.to_csv(rows))
    lines = []
    result = sagemaker.transformer.transform(
        spec(package, str(source), str(target), environment={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score"},
             max_payload_mb=1), log=lines.append)
    assert target.read_bytes() == protocol.render(model.inplace_predict(rows), protocol.CSV)  # the endpoint's answer
    assert stand_in.requests_sent == 2
    job = boto3.client("sagemaker").describe_transform_job(TransformJobName=result.job_name)
    assert (job["ModelName"], job["BatchStrategy"], job["MaxPayloadInMB"]) == (result.job_name, "MultiRecord", 1)
    assert job["TransformInput"]["SplitType"] == "Line" and job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformOutput"]["AssembleWith"] == "Line" and job["TransformOutput"]["Accept"] == "text/csv"
    root = f"s3://{MOTO_BUCKET}/modelops/abalone-model/transform/{result.job_name}"
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {"S3DataType": "ManifestFile",
                                                                  "S3Uri": f"{root}/input.manifest"}
    assert sagemaker.store.get_bytes(f"{root}/input/rows.csv") == source.read_bytes()
    assert stand_in.requests["CreateModel"]["PrimaryContainer"] == {
        "ModelPackageName": package.package_id, "Environment": {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_score"}}
    assert stand_in.requests["CreateModel"]["ExecutionRoleArn"] == MOTO_ROLE
    with pytest.raises(boto3.client("sagemaker").exceptions.ClientError):  # the model went with the job
        boto3.client("sagemaker").describe_model(ModelName=result.job_name)
    assert result.detail["answers"] == f"{root}/output/rows.csv.out" and result.rows is None
    assert any(line.endswith(": Completed") for line in lines)


def test_an_s3_table_is_scored_where_it_is_and_its_answers_copied_to_the_s3_output(sagemaker):
    package, model = served(sagemaker)
    BatchTransform(sagemaker.transformer.sagemaker)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=MOTO_BUCKET, Key="tables/rows.csv", Body=protocol.to_csv(ROWS[:100]))
    s3.put_object(Bucket=MOTO_BUCKET, Key="tables/rows.csv.old", Body=b"not, these, rows\n")
    sagemaker.transformer.transform(spec(package, f"s3://{MOTO_BUCKET}/tables/rows.csv",
                                         f"s3://{MOTO_BUCKET}/scores/rows.csv"))
    answers = s3.get_object(Bucket=MOTO_BUCKET, Key="scores/rows.csv")["Body"].read()
    assert answers == protocol.render(model.inplace_predict(ROWS[:100]), protocol.CSV)
    with pytest.raises(StoreError, match=r"no object at s3://modelops-test/tables/missing\.csv"):
        sagemaker.transformer.transform(spec(package, f"s3://{MOTO_BUCKET}/tables/missing.csv", "answers.csv"))


def test_raw_records_are_encoded_here_and_the_rows_uploaded(sagemaker, tmp_path):
    package, model = served(sagemaker)
    BatchTransform(sagemaker.transformer.sagemaker)
    source = tmp_path / "records.csv"
    source.write_text("a,b\n" + "".join(f"{i},{i % 3}\n" for i in range(50)))

    def encode(frame):  # stands in for encode_rows: two text columns -> four features
        a, b = frame["a"].astype(float), frame["b"].astype(float)
        return np.column_stack([a / 10, b, a * b / 100, -a / 50])

    result = sagemaker.transformer.transform(spec(package, str(source), str(tmp_path / "answers.csv"), encode=encode,
                                                  chunk_bytes=64))
    rows = encode(pd.read_csv(source, dtype=str))
    root = f"s3://{MOTO_BUCKET}/modelops/abalone-model/transform/{result.job_name}"
    assert sagemaker.store.get_bytes(f"{root}/input/rows.csv") == protocol.to_csv(rows)
    assert (tmp_path / "answers.csv").read_bytes() == protocol.render(model.inplace_predict(rows), protocol.CSV)


def test_a_failed_job_raises_its_failure_reason_and_the_model_is_deleted(sagemaker, tmp_path):
    package, _ = served(sagemaker)
    transformer = sagemaker.transformer
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(ROWS[:10]))
    job = "abalone-model-v1-20261207-120000-beef"
    reason = "ClientError: See job logs for more information. Loading csv data failed."
    request = transform_job_request(spec(package, str(source), "x"), ANY, ANY)
    request["TransformInput"] = ANY
    request["TransformOutput"] = ANY
    described = {"TransformJobName": job, "TransformJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:"
                                                             f"transform-job/{job}", "ModelName": job,
                 "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://b/m"}}},
                 "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                 "CreationTime": "2026-12-07T12:00:00Z"}
    lines = []
    with Stubber(transformer.sagemaker) as stub:
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"},
                          {"ModelName": job, "ExecutionRoleArn": MOTO_ROLE, "Tags": ANY,
                           "PrimaryContainer": {"ModelPackageName": package.package_id}})
        stub.add_response("create_transform_job", {"TransformJobArn": described["TransformJobArn"]}, request)
        stub.add_response("describe_transform_job", {**described, "TransformJobStatus": "InProgress"},
                          {"TransformJobName": job})
        stub.add_response("describe_transform_job", {**described, "TransformJobStatus": "Failed",
                                                     "FailureReason": reason}, {"TransformJobName": job})
        stub.add_response("delete_model", {}, {"ModelName": job})
        with pytest.raises(TransformFailed, match=r"batch transform job abalone-model-v1-20261207-120000-beef Failed: "
                                                  r"ClientError: See job logs .* Loading csv data failed\. Logs: "
                                                  r"CloudWatch /aws/sagemaker/TransformJobs"):
            transformer.transform(spec(package, str(source), str(tmp_path / "answers.csv")), log=lines.append)
        stub.assert_no_pending_responses()
    assert not (tmp_path / "answers.csv").exists()
    assert [line.rpartition(": ")[2] for line in lines[-2:]] == ["InProgress", "Failed"]


def test_the_request_is_valid_against_botocores_model():
    model = botocore.session.get_session().get_service_model("sagemaker")
    package = register.__globals__["PackageVersion"]  # the type, without a registry
    del package

    version = PackageVersion("abalone-model", 1, "Approved", "arn:aws:sagemaker:us-east-1:1:model-package/m/1",
                             "s3://b/k", "0" * 64, "image", "3.2-0", "3.2", {}, {}, "", "", LINEAGE, "")
    request = transform_job_request(spec(version, "rows.csv", "answers.csv", instance_count=2),
                                    "s3://b/job/input.manifest", "s3://b/job/output")
    report = ParamValidator().validate(request, model.operation_model("CreateTransformJob").input_shape)
    assert not report.has_errors(), report.generate_report()
    assert request["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 2}


def test_transform_table_scores_with_the_package_production_serves_as_a_batch_transform_job(sagemaker, tmp_path):
    from modelops.entities import PROMOTED
    from modelops.release.history import event_for
    from modelops.release.transform import transform_table
    from tests.support.served import CONFIG

    package, model = served(sagemaker)
    BatchTransform(sagemaker.transformer.sagemaker)
    sagemaker.history.append(event_for(CONFIG.name, PROMOTED, version=package.version, env_name="production",
                                       package_id=package.package_id))
    source = tmp_path / "rows.csv"
    source.write_bytes(protocol.to_csv(ROWS[:50]))
    result = transform_table(sagemaker, CONFIG, str(source), str(tmp_path / "answers.csv"), log=lambda line: None)
    assert result.version == package.version and result.job_name.startswith("abalone-model-v1-")
    assert (tmp_path / "answers.csv").read_bytes() == protocol.render(model.inplace_predict(ROWS[:50]), protocol.CSV)
