"""The sagemaker backend: S3, SageMaker training jobs, the SageMaker model registry and hosting endpoints."""

from __future__ import annotations

from functools import cached_property

from modelops import settings
from modelops.backends.base import Backend
from modelops.backends.sagemaker.aws import Aws, is_not_found, translated
from modelops.backends.sagemaker.store import S3Store
from modelops.errors import BackendUnavailable, ConfigError, StoreError


class SageMakerBackend(Backend):
    """Everything in one AWS account and region::

        s3://BUCKET/PREFIX/<model>/datasets/      gathered splits and manifests
        s3://BUCKET/PREFIX/<model>/training/<job> training job outputs (model.tar.gz, log)
        s3://BUCKET/PREFIX/<model>/tuning/<job>   the training jobs of a hyperparameter tuning job
        s3://BUCKET/PREFIX/<model>/evaluation/    evaluation reports (the packages' ModelMetrics)
        s3://BUCKET/PREFIX/<model>/history/       the model's events, one object each, chained by hash
        s3://BUCKET/PREFIX/<model>/transform/<job> a batch transform's input, manifest and answers
        s3://BUCKET/PREFIX/<model>/processing/<job> a Processing job's code and its executed notebook
        s3://BUCKET/PREFIX/<model>/model-monitor/   Model Monitor's baselines, preprocessor and reports
        SageMaker model package group <model>     versions and their approval status
        SageMaker endpoint <model>                with one model + endpoint config per deployed version
        CloudWatch alarms modelops-<endpoint>-*   what rolls a guarded production update back
        Application Auto Scaling target           endpoint/<model>/variant/AllTraffic (production's autoscaling)

    Settings (region, execution role, bucket, prefix) come from ``settings.sagemaker_settings``; credentials
    from boto3's standard chain. Nothing is created before the settings are checked.
    """

    name = "sagemaker"

    def __init__(self, config: settings.SageMakerSettings | None = None, *, session=None, poll_seconds: float = 15):
        self.settings = config or settings.sagemaker_settings()
        self.aws = Aws(self.settings.region, session)
        self.poll_seconds = poll_seconds
        super().__init__(S3Store(self.aws.client("s3"), self._bucket(), self.settings.prefix))

    @cached_property
    def trainer(self):
        from modelops.backends.sagemaker.trainer import SageMakerTrainer

        return SageMakerTrainer(self.aws.client("sagemaker"), self.aws.client("logs"), self.store,
                                self.settings.role_arn, self.image_uri, poll_seconds=self.poll_seconds)

    @cached_property
    def tuner(self):
        from modelops.backends.sagemaker.tuner import SageMakerTuner

        return SageMakerTuner(self.aws.client("sagemaker"), self.settings.role_arn, self.image_uri,
                              poll_seconds=max(self.poll_seconds, 0))

    @cached_property
    def registry(self):
        from modelops.backends.sagemaker.registry import SageMakerRegistry

        return SageMakerRegistry(self.aws.client("sagemaker"), self.store, self.history)

    @cached_property
    def endpoints(self):
        from modelops.backends.sagemaker.endpoints import SageMakerEndpoints

        return SageMakerEndpoints(self.aws.client("sagemaker"), self.aws.client("sagemaker-runtime"), self.store,
                                  self.settings.role_arn, self.settings.region,
                                  cloudwatch_client=self.aws.client("cloudwatch"),
                                  autoscaling_client=self.aws.client("application-autoscaling"),
                                  poll_seconds=self.poll_seconds)

    @cached_property
    def transformer(self):
        from modelops.backends.sagemaker.transformer import SageMakerTransformer

        return SageMakerTransformer(self.aws.client("sagemaker"), self.store, self.settings.role_arn,
                                    poll_seconds=self.poll_seconds)

    @cached_property
    def processor(self):
        """Runs a notebook in a SageMaker Processing job (the gather, when model.yml's data.processing says so)."""
        from modelops.backends.sagemaker.processing import NotebookProcessor

        return NotebookProcessor(self.aws.client("sagemaker"), self.store, self.settings.role_arn,
                                 self.job_environment(), poll_seconds=self.poll_seconds)

    @cached_property
    def model_monitor(self):
        """SageMaker Model Monitor's data- and model-quality jobs on an endpoint's capture (ci monitor)."""
        from modelops.backends.sagemaker.model_monitor import ModelMonitor

        return ModelMonitor(self.aws.client("sagemaker"), self.store, self.settings.role_arn, self.settings.region,
                            poll_seconds=self.poll_seconds)

    def job_environment(self) -> dict[str, str]:
        """The settings a notebook inside a SageMaker job needs to use this backend (never credentials: the job
        runs as the execution role)."""
        from modelops.settings import BUCKET_ENV, PREFIX_ENV, ROLE_ENV

        environment = {"AWS_REGION": self.settings.region, "AWS_DEFAULT_REGION": self.settings.region,
                       ROLE_ENV: self.settings.role_arn, PREFIX_ENV: self.settings.prefix,
                       BUCKET_ENV: self.store.bucket, "MODELOPS_BACKEND": "sagemaker"}
        return environment

    @cached_property
    def history(self):
        from modelops.backends.sagemaker.history import S3History

        return S3History(self.store, self.aws.client("sagemaker"))

    def image_uri(self, container_version: str) -> str:
        """The built-in XGBoost image of ``container_version`` in this region, as the SageMaker SDK knows it."""
        return xgboost_image(self.settings.region, container_version)

    def _bucket(self) -> str:
        """The configured bucket, else SageMaker's default one (``sagemaker-<region>-<account>``, created if absent)."""
        if self.settings.bucket:
            return self.settings.bucket
        bucket = f"sagemaker-{self.settings.region}-{self.aws.account_id()}"
        s3 = self.aws.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception as exc:
            if not is_not_found(exc):
                message = f"cannot use the default bucket {bucket}: {exc}. Fix: set MODELOPS_S3_BUCKET."
                raise StoreError(message) from exc
            location = {} if self.settings.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": self.settings.region}}
            with translated(StoreError, f"creating the default bucket {bucket}", "set MODELOPS_S3_BUCKET"):
                s3.create_bucket(Bucket=bucket, **location)
        return bucket


def xgboost_image(region: str, container_version: str) -> str:
    """The built-in XGBoost image of ``container_version`` in ``region``, as the SageMaker SDK knows it.

    Raises:
        BackendUnavailable: the SDK is not installed.
        ConfigError: the SDK knows no such container in that region.
    """
    try:
        # Imported here: the SDK is an optional extra, and only this backend needs it.
        from sagemaker.core import image_uris
    except ModuleNotFoundError as exc:
        raise BackendUnavailable("the sagemaker backend needs the SageMaker SDK to find the XGBoost image. Fix: "
                                 "pip install 'modelops[aws]'.") from exc
    try:
        return image_uris.retrieve("xgboost", region=region, version=container_version)
    except ValueError as exc:
        raise ConfigError(f"the SageMaker SDK knows no XGBoost container {container_version!r} in {region}: {exc}. "
                          f"Fix: set training.container_version in model.yml to a version it lists.") from exc


def build(**options) -> SageMakerBackend:
    return SageMakerBackend(**options)
