"""Batch scoring above any backend: the package an environment serves, and a table scored with it.

The package is the one the environment's endpoint serves as the history records it (its newest deployed,
promoted or rolled-back event, unless a stop came after), so a table is scored by exactly what answers live
requests, with the container settings of model.yml ``serving``. Raw records go through the model's features.py
and the feature encoding recorded with that package's training data, as ``ci invoke --raw`` sends them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from modelops.backends.base import Backend
from modelops.config import PRODUCTION, ModelConfig
from modelops.entities import PackageVersion, TransformResult, TransformSpec
from modelops.errors import EndpointFailed


def served_package(ops: Backend, config: ModelConfig, env_name: str = PRODUCTION) -> PackageVersion:
    """The package ``env_name`` serves now, as the model's history records it.

    Raises:
        EndpointFailed: nothing serves there (never deployed, or stopped), naming the fix.
        RegistryError: the recorded version is not in the registry.
    """
    from modelops.release.history import served_at

    served = served_at(ops.history.events(config.name), env_name, datetime.now(UTC))
    if served.version is None:
        folder = config.folder.name if config.folder else "MODEL_DIR"
        how = (f"promote staging's version (`python -m ci promote {folder} --by NAME`)" if env_name == PRODUCTION
               else f"deploy one (`python -m ci deploy {folder} --env {env_name}`)")
        stopped = f" since {served.since.at} (stopped)" if served.since is not None else ""
        raise EndpointFailed(f"{config.name}'s {env_name} environment serves no version{stopped}, so there is no "
                             f"package to score with. Fix: {how}, or score with --env staging.")
    return ops.registry.get(config.name, served.version)


def transform_table(ops: Backend, config: ModelConfig, input_uri: str, output_uri: str, *,
                    env_name: str = PRODUCTION, raw: bool = False, unseen: str = "error",
                    chunk_bytes: int | None = None, log=print) -> TransformResult:
    """Score every row of ``input_uri`` with the package ``env_name`` serves; its answers go to ``output_uri``.

    Args:
        ops: the backend (local: in-process, chunk by chunk; sagemaker: a batch transform job).
        config: the model.
        input_uri: a CSV file or s3:// object of feature rows without a header (what the endpoint takes), or
            with ``raw`` records with a header row of the data's own columns (the target may be absent).
        output_uri: where the answers go, one line per input row, as the container answers text/csv.
        env_name: whose package scores (default production).
        raw: encode records with features.py and the recorded encoding first.
        unseen: with ``raw``, a category never seen in training is an error, or ``"zeros"`` (no one-hot column).
        chunk_bytes: local: how much of the input one chunk reads (default ``serving.batch.CHUNK_BYTES``).
        log: receives progress lines.

    Raises:
        EndpointFailed: the environment serves nothing.
        DataError: a row cannot be scored (its line and the fix); nothing is written to ``output_uri``.
        TransformFailed: the SageMaker job failed (its FailureReason).
        ConfigError: an s3:// input or output on the local backend, or ``unseen`` is neither value.
        StoreError: the input is missing, or the package's artifact or training data's encoding cannot be read.
    """
    from modelops.training.train import job_name

    package = served_package(ops, config, env_name)
    encode = _encoder(ops, config, package, unseen) if raw else None
    env = config.deploy_environment(env_name)
    name = job_name(f"{config.name[:24]}-v{package.version}")
    spec = TransformSpec(config.name, name, package, input_uri, output_uri,
                         environment=config.serving.environment, encode=encode, instance_type=env.instance_type,
                         instance_count=env.instance_count, chunk_bytes=chunk_bytes)
    log(f"{env_name} serves {package.label}: scoring {input_uri}" + (" (raw records)" if raw else ""))
    return ops.transformer.transform(spec, log=log)


def _encoder(ops: Backend, config: ModelConfig, package: PackageVersion, unseen: str):
    """Raw records -> feature rows, as training prepared them (features.py, the package's recorded encoding)."""
    from modelops.data.datasets import package_dataset
    from modelops.data.encoding import UNSEEN
    from modelops.data.prepare import encode_rows
    from modelops.errors import ConfigError

    if unseen not in UNSEEN:
        raise ConfigError(f"unseen must be one of {list(UNSEEN)}, not {unseen!r}.")
    encoding = package_dataset(ops.store, config, package).feature_encoding

    def encode(frame):
        return encode_rows(config, frame, encoding, unseen=unseen).to_numpy(dtype="float64")

    return encode
