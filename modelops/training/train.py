"""XGBoost training with the SageMaker built-in algorithm's semantics, and its model.tar.gz artifact.

The artifact is what a SageMaker training job writes: ``model.tar.gz`` holding one file, ``xgboost-model``,
in XGBoost's own (UBJSON) format. It is loaded with ``Booster.load_model`` only: never unpickled.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import tarfile
import time
from dataclasses import dataclass

import numpy as np

from modelops.backends.base import Backend
from modelops.errors import ConfigError, StoreError, TrainingFailed
from modelops.training.threads import train_threads

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
    # A fair share of the CPUs (modelops.training.threads): two trainings at once on 2 cores get one thread each.
    params.setdefault("nthread", train_threads())
    params.setdefault("seed", 0)  # the container's default
    params.setdefault("verbosity", 1)
    return params, _rounds(hyperparameters, "num_round"), _rounds(hyperparameters, "early_stopping_rounds")


def _rounds(hyperparameters: dict, name: str) -> int | None:
    """A round count as the container validates it: an integer >= 1; num_round is required."""
    value = hyperparameters.get(name)
    if value is None and name != "num_round":
        return None
    try:
        rounds = int(value) if float(value) == int(float(value)) else None
    except (TypeError, ValueError):
        rounds = None
    if rounds is None or rounds < 1:
        found = "missing" if value is None else f"{value!r}"
        raise ConfigError(f"hyperparameter {name} is {found}; the SageMaker XGBoost container requires an integer "
                          f">= 1. Fix: set training.hyperparameters.{name} in model.yml.")
    return rounds


def fit(X_train: np.ndarray, y_train: np.ndarray, X_validation: np.ndarray, y_validation: np.ndarray,
        hyperparameters: dict) -> FitResult:
    """Train as the built-in algorithm does: num_round rounds, the eval metric on train and validation
    logged every round, early stopping on validation when configured.

    Raises:
        ConfigError: xgboost rejects a hyperparameter (its message is kept).
        TrainingFailed: the hyperparameters are valid but xgboost cannot train on this data (e.g. labels
            outside [0, 1] for binary:logistic), as the container fails the job.
    """
    import xgboost

    params = xgboost_params(hyperparameters)[0]
    train = xgboost.DMatrix(X_train, label=y_train, nthread=params["nthread"])
    validation = xgboost.DMatrix(X_validation, label=y_validation, nthread=params["nthread"])
    return fit_matrices(train, validation, hyperparameters)


def fit_channels(train_files, validation_files, hyperparameters: dict) -> FitResult:
    """``fit`` on channel CSV files, streamed into XGBoost's matrices (modelops.training.channels)."""
    from modelops.training.channels import matrices

    params = xgboost_params(hyperparameters)[0]
    return fit_matrices(*matrices(train_files, validation_files, params), hyperparameters)


def fit_matrices(train, validation, hyperparameters: dict) -> FitResult:
    """``fit`` on XGBoost matrices already built (a DMatrix or a QuantileDMatrix each)."""
    import xgboost

    params, num_round, early_stopping = xgboost_params(hyperparameters)
    try:
        # Configuring a booster checks the parameters without looking at the labels: an error here is the
        # hyperparameters' fault, one during training the data's.
        xgboost.Booster(params, [train]).save_config()
    except xgboost.core.XGBoostError as exc:
        raise ConfigError(f"xgboost rejected the hyperparameters in model.yml: {_xgboost_reason(exc)}. Fix: correct "
                          f"training.hyperparameters (see the SageMaker XGBoost hyperparameter reference).") from exc
    history: dict = {}
    callbacks = [early_stopping_callback(params, early_stopping)] if early_stopping else []
    try:
        booster = xgboost.train(params, train, num_boost_round=num_round,
                                evals=[(train, "train"), (validation, "validation")], evals_result=history,
                                callbacks=callbacks, verbose_eval=False)
    except xgboost.core.XGBoostError as exc:
        raise TrainingFailed(f"xgboost could not train on this data with objective "
                             f"{params.get('objective', 'reg:squarederror')}: {_xgboost_reason(exc)}. Fix: check the "
                             f"target column against the objective (model.yml problem_type and "
                             f"training.hyperparameters).") from exc
    metric = next(iter(history["validation"]))
    curves = {name: [float(v) for v in values[metric]] for name, values in history.items()}
    lines = tuple(f"[{i}]#011train-{metric}:{curves['train'][i]:.5f}#011validation-{metric}:"
                  f"{curves['validation'][i]:.5f}" for i in range(len(curves["validation"])))
    best = getattr(booster, "best_iteration", None) if early_stopping else None
    return FitResult(booster, curves, metric, best, len(curves["validation"]), lines)


def early_stopping_callback(params: dict, rounds: int):
    """Early stopping as the SageMaker XGBoost container sets it up (``callback.py`` ``get_callbacks``).

    On the validation channel, on the last eval metric, maximising the metrics the container lists as such, and
    ``save_best``: the model keeps only the rounds up to its best iteration (xgboost's own ``early_stopping_rounds``
    argument keeps every round trained, which then predicts differently from the container's artifact).
    """
    import xgboost

    from modelops.metrics import XGB_MAXIMIZE_METRICS

    metric = eval_metric_name(params)
    return xgboost.callback.EarlyStopping(rounds=int(rounds), data_name="validation", metric_name=metric,
                                          maximize=metric in XGB_MAXIMIZE_METRICS if metric else None,
                                          save_best=True)


def eval_metric_name(params: dict) -> str | None:
    """The eval metric early stopping watches: the last one configured (None: XGBoost's default for the objective)."""
    metric = params.get("eval_metric")
    if isinstance(metric, (list, tuple)):
        return str(metric[-1]) if metric else None
    return str(metric).split(",")[-1].strip() if metric else None


def check_hyperparameters(hyperparameters: dict, n_features: int = 3) -> None:
    """Train one round on a tiny random set: an invalid value fails now, not after the data is read.

    Raises:
        ConfigError: naming xgboost's complaint.
    """
    rng = np.random.default_rng(0)
    X = rng.random((8, n_features))
    y = (X[:, 0] > 0.5).astype(float)
    trial = {k: v for k, v in hyperparameters.items() if k != "early_stopping_rounds"}
    xgboost_params(hyperparameters)  # num_round and early_stopping_rounds themselves
    try:
        fit(X, y, X, y, {**trial, "num_round": 1})
    except TrainingFailed as exc:  # the random labels do not suit these hyperparameters (e.g. num_class)
        raise ConfigError(f"the hyperparameters cannot train even a tiny random sample: {exc}") from exc


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


def _xgboost_reason(exc: BaseException) -> str:
    """xgboost's message without its time and source location ("[02:43:59] /workspace/src/...cu:83: ")."""
    return re.sub(r"^\[[\d:]+\] \S+:\d+: (?:Check failed: \w+: )?", "", _first_line(exc)).rstrip(". ")


def train_model(ops: Backend, config, dataset, *, log=print):
    """Train the model folder's configuration on a gathered dataset with the backend's trainer.

    The hyperparameters are first tried on a tiny sample in-process, so a value XGBoost rejects fails in
    a second instead of after a paid training job has started.

    Returns:
        The backend's TrainingResult.
    """
    from modelops.entities import TrainingSpec

    hyperparameters = config.hyperparameters  # model.yml's, with num_class from data.classes for multiclass
    check_hyperparameters(hyperparameters, n_features=len(dataset.feature_names))
    name = job_name(config.name)
    spec = TrainingSpec(
        model=config.name,
        job_name=name,
        container_version=config.training.container_version,
        hyperparameters=dict(hyperparameters),
        train_uri=dataset.channel_uris["train"],
        validation_uri=dataset.channel_uris["validation"],
        output_uri=ops.store.uri(config.name, "training", name),
        instance_type=config.training.instance_type,
        instance_count=config.training.instance_count,
        max_runtime_seconds=config.training.max_runtime_seconds,
    )
    if spec.instance_count > 1 and not ops.trainer.distributed:
        log(f"{name}: training.instance_count {spec.instance_count} is ignored by the {ops.name} backend: it "
            f"trains on one process, on all train rows (SageMaker trains on {spec.instance_count} instances, each on "
            f"its shard)")
    return ops.trainer.train(spec, log=log)


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
