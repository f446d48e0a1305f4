"""XGBoost training with the SageMaker built-in algorithm's semantics, and its model.tar.gz artifact.

The artifact is what a SageMaker training job writes: ``model.tar.gz`` holding one file, ``xgboost-model``,
in XGBoost's own (UBJSON) format. It is loaded with ``Booster.load_model`` only: never unpickled.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
from dataclasses import dataclass

import numpy as np

from modelops.errors import ConfigError, StoreError
from modelops.threads import train_threads

MODEL_FILE = "xgboost-model"

#: Hyperparameters the SageMaker container reads itself rather than passing to xgboost.
_SAGEMAKER_ONLY = {"num_round", "early_stopping_rounds", "csv_weights", "_kfold", "_num_cv_round"}
#: Accepted by the container, but meaningless or unsupported for in-process training.
_LOCAL_UNSUPPORTED = {"csv_weights", "single_precision_histogram", "deterministic_histogram",
                      "use_dask_gpu_training", "lambda_bias"}



@dataclass(frozen=True)
class FitResult:
    """A trained booster with its per-round metrics."""

    booster: object
    curves: dict[str, list[float]]  # {"train": [...], "validation": [...]} for the eval metric
    eval_metric: str
    best_iteration: int | None
    rounds: int
    log_lines: tuple[str, ...]


def xgboost_params(hyperparameters: dict) -> tuple[dict, int, int | None]:
    """SageMaker hyperparameters -> (xgboost params, num_round, early_stopping_rounds).

    Raises:
        ConfigError: a hyperparameter the local trainer cannot honour.
    """
    unsupported = sorted(set(hyperparameters) & _LOCAL_UNSUPPORTED)
    if unsupported:
        raise ConfigError(f"hyperparameters {unsupported} are not supported by local training. Fix: remove them "
                          f"from training.hyperparameters in model.yml, or train with backend='sagemaker'.")
    params = {k: v for k, v in hyperparameters.items() if k not in _SAGEMAKER_ONLY}
    # A fair share of the CPUs (modelops.threads): two trainings at once on 2 cores get one thread each.
    params.setdefault("nthread", train_threads())
    params.setdefault("seed", 0)  # the container's default
    params.setdefault("verbosity", 1)
    return params, int(hyperparameters["num_round"]), hyperparameters.get("early_stopping_rounds")


def fit(X_train: np.ndarray, y_train: np.ndarray, X_validation: np.ndarray, y_validation: np.ndarray,
        hyperparameters: dict) -> FitResult:
    """Train as the built-in algorithm does: num_round rounds, the eval metric on train and validation
    logged every round, early stopping on validation when configured.

    Raises:
        ConfigError: xgboost rejects a hyperparameter (its message is kept).
    """
    import xgboost

    params, num_round, early_stopping = xgboost_params(hyperparameters)
    train = xgboost.DMatrix(X_train, label=y_train, nthread=params["nthread"])
    validation = xgboost.DMatrix(X_validation, label=y_validation, nthread=params["nthread"])
    history: dict = {}
    try:
        booster = xgboost.train(params, train, num_boost_round=num_round,
                                evals=[(train, "train"), (validation, "validation")], evals_result=history,
                                early_stopping_rounds=early_stopping, verbose_eval=False)
    except xgboost.core.XGBoostError as exc:
        raise ConfigError(f"xgboost rejected the hyperparameters in model.yml: {_first_line(exc)}. Fix: correct "
                          f"training.hyperparameters (see the SageMaker XGBoost hyperparameter reference).") from exc
    metric = next(iter(history["validation"]))
    curves = {name: [float(v) for v in values[metric]] for name, values in history.items()}
    lines = tuple(f"[{i}]#011train-{metric}:{curves['train'][i]:.5f}#011validation-{metric}:"
                  f"{curves['validation'][i]:.5f}" for i in range(len(curves["validation"])))
    best = getattr(booster, "best_iteration", None) if early_stopping else None
    return FitResult(booster, curves, metric, best, len(curves["validation"]), lines)


def check_hyperparameters(hyperparameters: dict, n_features: int = 3) -> None:
    """Train one round on a tiny random set: an invalid value fails now, not after the data is read.

    Raises:
        ConfigError: naming xgboost's complaint.
    """
    rng = np.random.default_rng(0)
    X = rng.random((8, n_features))
    y = (X[:, 0] > 0.5).astype(float)
    trial = {k: v for k, v in hyperparameters.items() if k != "early_stopping_rounds"}
    fit(X, y, X, y, {**trial, "num_round": 1})


def pack_model(booster) -> bytes:
    """``model.tar.gz`` bytes holding ``xgboost-model``; identical for an identical model (no timestamps)."""
    raw = bytes(booster.save_raw("ubj"))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo(MODEL_FILE)
        info.size, info.mtime, info.mode = len(raw), 0, 0o644
        tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def unpack_model(data: bytes, *, source: str = "model.tar.gz"):
    """Load the booster from ``model.tar.gz`` bytes with xgboost's own loader (never pickle).

    Raises:
        StoreError: not a gzip tar, no ``xgboost-model`` inside, or not an XGBoost model.
    """
    import xgboost

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            member = tar.getmember(MODEL_FILE)
            if not member.isfile():
                raise KeyError(MODEL_FILE)
            raw = tar.extractfile(member).read()
    except KeyError as exc:
        raise StoreError(f"{source} has no {MODEL_FILE} file. Fix: use a SageMaker XGBoost model artifact.") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StoreError(f"{source} is not a readable model.tar.gz ({exc}); it may be truncated or corrupt. "
                         f"Fix: train and register the model again.") from exc
    booster = xgboost.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgboost.core.XGBoostError as exc:
        raise StoreError(f"{source}: {MODEL_FILE} is not an XGBoost model in JSON/UBJSON format (pickled models "
                         f"are refused). Fix: retrain with xgboost {xgboost.__version__}.") from exc
    return booster


def job_name(model: str) -> str:
    """A training job name valid for SageMaker: ``<model>-<yyyymmdd-hhmmss>-<4 hex>`` (at most 63 chars)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{model}-{stamp}-{os.urandom(2).hex()}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def train_model(backend, config, dataset, *, log=print):
    """Train the model folder's configuration on a gathered dataset with the backend's trainer.

    The hyperparameters are first tried on a tiny sample in-process, so a value XGBoost rejects fails in
    a second instead of after a paid training job has started.

    Returns:
        The backend's TrainingResult.
    """
    from modelops.backends.base import TrainingSpec

    hyperparameters = config.training.hyperparameters
    check_hyperparameters(hyperparameters, n_features=len(dataset.feature_names))
    name = job_name(config.name)
    spec = TrainingSpec(
        model=config.name,
        job_name=name,
        container_version=config.training.container_version,
        hyperparameters=dict(hyperparameters),
        train_uri=dataset.channel_uris["train"],
        validation_uri=dataset.channel_uris["validation"],
        output_uri=backend.store.uri(config.name, "training", name),
        instance_type=config.training.instance_type,
        instance_count=config.training.instance_count,
        max_runtime_seconds=config.training.max_runtime_seconds,
    )
    return backend.trainer.train(spec, log=log)


def load_artifact(store, uri: str, sha256: str | None = None):
    """Load a model.tar.gz from a store, refusing it if its sha256 differs from the recorded one.

    Raises:
        StoreError: missing, corrupt, or not the artifact that was recorded.
    """
    import hashlib

    data = store.get_bytes(uri)
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise StoreError(f"{uri} has sha256 {actual}, but {sha256} was recorded: the artifact was changed or "
                             f"damaged after training. Fix: do not serve it; train and register a new version.")
    return unpack_model(data, source=uri)
