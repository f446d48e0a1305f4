"""SageMaker hosting for moto: UpdateEndpoint, and InvokeEndpoint answering as the XGBoost container.

Hosting on moto: ``SageMakerHosting`` does the two things moto 5.2.5 does not, as botocore event handlers on
the backend's own clients (every other call reaches moto):

- UpdateEndpoint: moto does not implement it. A Stubber cannot stand in for one operation: it answers every
  call of the client, and a deploy makes a dozen (models, endpoint configs, tags) that moto should keep and
  check. The handler does to moto's state what UpdateEndpoint does to what can be observed (the endpoint
  serves the new endpoint config and keeps its tags), through moto's own DeleteEndpoint and CreateEndpoint.
  tests/test_sagemaker_backend.py covers the Updating phase and failed updates with a Stubber.
- InvokeEndpoint: moto answers every request with a canned body, for endpoints that do not exist too. The
  handler answers as SageMaker and the built-in XGBoost container do (aws/sagemaker-xgboost-container,
  algorithm_mode/serve.py): it follows the endpoint to its endpoint config, model and model package, loads
  that package's model.tar.gz from S3 and predicts the CSV rows; an unknown endpoint is a ValidationError;
  a payload the container refuses is a ModelError carrying the container's status (400 "Unable to evaluate
  payload provided: ...", 415 for an unreadable body) and message.
"""

from __future__ import annotations

import io

import numpy as np

from tests.support.aws import REGION, answer, error_answer, moto_client, remember_params

ACCOUNT = "123456789012"


class SageMakerHosting:
    """UpdateEndpoint and InvokeEndpoint for moto (see the module docstring)."""

    def __init__(self, endpoints):
        self.control = moto_client("sagemaker")  # clients of their own: these handlers are not on them
        self.s3 = moto_client("s3")
        self.models: dict[str, object] = {}
        self.configs: dict[str, object] = {}
        for client, operation, handler in ((endpoints.sagemaker, "sagemaker.UpdateEndpoint", self._update),
                                           (endpoints.runtime, "sagemaker-runtime.InvokeEndpoint", self._invoke)):
            client.meta.events.register(f"before-parameter-build.{operation}", remember_params)
            client.meta.events.register(f"before-call.{operation}", handler)

    def _update(self, context, **kwargs):
        request = context["contract_params"]
        name = request["EndpointName"]
        try:
            arn = self.control.describe_endpoint(EndpointName=name)["EndpointArn"]
        except self.control.exceptions.ClientError:
            return error_answer(400, "ValidationException", f'Could not find endpoint "{name}".')
        tags = self.control.list_tags(ResourceArn=arn)["Tags"]
        self.control.delete_endpoint(EndpointName=name)
        self.control.create_endpoint(EndpointName=name, EndpointConfigName=request["EndpointConfigName"], Tags=tags)
        return answer({"EndpointArn": arn})

    def _invoke(self, context, **kwargs):
        request = context["contract_params"]
        name = request["EndpointName"]
        try:
            endpoint = self.control.describe_endpoint(EndpointName=name)
        except self.control.exceptions.ClientError:
            return error_answer(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found.")
        status, body = self._container(self._booster(endpoint), request["Body"])
        if status != 200:
            return error_answer(
                424, "ModelError",
                f'Received client error ({status}) from primary with message "{body}". See '
                f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}#logEventViewer:"
                f"group=/aws/sagemaker/Endpoints/{name} in account {ACCOUNT} for more information.",
                OriginalStatusCode=status, OriginalMessage=body,
                LogStreamArn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}")
        from botocore.response import StreamingBody

        data = body.encode()
        return answer({"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "text/csv",
                        "InvokedProductionVariant": "AllTraffic"})

    def _booster(self, endpoint: dict):
        """The model the endpoint's config serves: config -> model -> model package -> model.tar.gz.

        Kept per endpoint config, which SageMaker never changes (an update switches to another one): the
        promotion gate sends hundreds of requests, each of which would otherwise make three describe calls.
        """
        name = endpoint["EndpointConfigName"]
        if name not in self.configs:
            self.configs[name] = self._load(name)
        return self.configs[name]

    def _load(self, config_name: str):
        from modelops.training.train import unpack_model

        config = self.control.describe_endpoint_config(EndpointConfigName=config_name)
        model = self.control.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        package = self.control.describe_model_package(ModelPackageName=model["PrimaryContainer"]["ModelPackageName"])
        uri = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
        if uri not in self.models:
            bucket, _, key = uri[len("s3://"):].partition("/")
            booster = unpack_model(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            # One thread: the same predictions, without every request's threads contending on a busy machine.
            booster.set_param("nthread", 1)
            self.models[uri] = booster
        return self.models[uri]

    @staticmethod
    def _container(booster, payload: bytes) -> tuple[int, str]:
        """What the container's /invocations answers for a text/csv payload: (status, body)."""
        import xgboost

        try:
            rows = np.loadtxt(io.BytesIO(payload), delimiter=",", ndmin=2)
        except ValueError as exc:
            return 415, str(exc)
        try:
            scores = booster.predict(xgboost.DMatrix(rows, nthread=1), validate_features=False)
        except xgboost.core.XGBoostError as exc:
            return 400, f"Unable to evaluate payload provided: {str(exc).splitlines()[0]}"
        return 200, "".join(f"{score}\n" for score in scores.tolist())  # one per line, as numpy's savetxt writes
