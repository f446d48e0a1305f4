"""SageMaker batch transform for moto: the job's answers, as the built-in XGBoost container writes them.

moto 5.2.6 stores a CreateTransformJob request (botocore has validated it against the service model by then) and
describes the job as Completed at once, but writes no output. ``BatchTransform`` does that part, as a botocore
``after-call`` handler on the backend's own SageMaker client: it follows the job's model to its model package and
model.tar.gz, reads the manifest's one object, splits it at line ends into requests of at most MaxPayloadInMB
(SplitType=Line, BatchStrategy=MultiRecord), answers each as the container does under batch transform
(aws/sagemaker-xgboost-container, algorithm_mode/serve.py: with SAGEMAKER_BATCH set, scores are
``"\\n".join(map(str, preds.tolist())) + "\\n"``) and writes them, joined (AssembleWith=Line), to
``<S3OutputPath>/<object name>.out``. A job it cannot score is left Completed without output, which the
backend reports.
"""

from __future__ import annotations

import json

import numpy as np

from tests.support.aws import moto_client


class BatchTransform:
    """Writes a moto transform job's output (see the module docstring); keeps the requests it saw."""

    def __init__(self, sagemaker_client):
        self.control = moto_client("sagemaker")
        self.s3 = moto_client("s3")
        self.requests: dict[str, dict] = {}  # operation -> its last request, as sent
        self.requests_sent = 0  # the container requests the last job was split into
        for operation in ("CreateModel", "CreateTransformJob"):
            sagemaker_client.meta.events.register(f"before-parameter-build.sagemaker.{operation}", self._remember)
        sagemaker_client.meta.events.register("after-call.sagemaker.CreateTransformJob", self._run)

    def _remember(self, params, model, **kwargs):
        self.requests[model.name] = dict(params)

    def _run(self, **kwargs):
        request = self.requests["CreateTransformJob"]
        container = self.requests["CreateModel"]["PrimaryContainer"]
        booster = self._booster(container["ModelPackageName"])
        prefix, name = json.loads(self._read(request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]))
        lines = self._read(prefix["prefix"] + name).splitlines(keepends=True)
        limit, answers, batch, size = request["MaxPayloadInMB"] * 2**20, [], [], 0
        for line in lines + [None]:
            if line is None or (batch and size + len(line) > limit):
                answers.append(self._container(booster, b"".join(batch)))
                batch, size = [], 0
            if line is not None:
                batch.append(line)
                size += len(line)
        self.requests_sent = len(answers)
        bucket, _, key = request["TransformOutput"]["S3OutputPath"][len("s3://"):].partition("/")
        self.s3.put_object(Bucket=bucket, Key=f"{key.rstrip('/')}/{name}.out", Body=b"".join(answers))

    @staticmethod
    def _container(booster, payload: bytes) -> bytes:
        import xgboost

        # encoder.csv_to_dmatrix: split at line breaks and commas, an empty cell is "nan"
        cells = [["nan" if c == "" else c for c in line.split(",")] for line in payload.strip().decode().split("\n")]
        rows = np.array(cells).astype(float)
        predictions = booster.predict(xgboost.DMatrix(rows), validate_features=False)
        return ("\n".join(map(str, predictions.tolist())) + "\n").encode()

    def _booster(self, package_arn: str):
        from modelops.training.train import unpack_model

        package = self.control.describe_model_package(ModelPackageName=package_arn)
        return unpack_model(self._read(package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]))

    def _read(self, uri: str) -> bytes:
        bucket, _, key = uri[len("s3://"):].partition("/")
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
