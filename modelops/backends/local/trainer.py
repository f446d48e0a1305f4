"""Local trainer: in-process XGBoost on the channel CSVs, writing what a SageMaker training job writes."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd

from modelops.backends.base import Trainer
from modelops.backends.local.store import LocalStore
from modelops.entities import TrainingResult, TrainingSpec
from modelops.errors import TrainingFailed
from modelops.training.train import fit, pack_model


class LocalTrainer(Trainer):
    """Trains in this process; outputs go under ``spec.output_uri`` in the local store."""

    def __init__(self, store: LocalStore, image_uri):
        self.store = store
        self.image_uri = image_uri

    def train(self, spec: TrainingSpec, *, log=print) -> TrainingResult:
        import xgboost

        started = time.monotonic()
        log(f"{spec.job_name}: InProgress (local, xgboost {xgboost.__version__})")
        X_train, y_train = self._channel(spec.train_uri, "train")
        X_validation, y_validation = self._channel(spec.validation_uri, "validation")
        result = fit(X_train, y_train, X_validation, y_validation, spec.hyperparameters)
        output = spec.output_uri.rstrip("/")
        artifact = self.store.put_bytes(f"{output}/output/model.tar.gz", pack_model(result.booster))
        log_uri = self.store.put_bytes(f"{output}/training-log.txt", ("\n".join(result.log_lines) + "\n").encode()).uri
        self.store.put_bytes(f"{output}/validation-curve.json", json.dumps(result.curves).encode())
        for line in result.log_lines[-3:]:
            log(line)
        log(f"{spec.job_name}: Completed")
        return TrainingResult(
            job_name=spec.job_name,
            artifact_uri=artifact.uri,
            artifact_sha256=artifact.sha256,
            image=self.image_uri(spec.container_version),
            container_version=spec.container_version,
            xgboost_version=xgboost.__version__,
            hyperparameters=dict(spec.hyperparameters),
            eval_metric=result.eval_metric,
            curves=result.curves,
            rounds=result.rounds,
            best_iteration=result.best_iteration,
            duration_seconds=round(time.monotonic() - started, 3),
            log_uri=log_uri,
        )

    def _channel(self, uri: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        return read_channel(self.store, uri, name)


def read_channel(store: LocalStore, uri: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A channel's rows as (features, labels). A channel is a prefix: every CSV file under it is read, as the
    container does.

    Raises:
        TrainingFailed: the channel holds no CSV file.
    """
    folder = store.path(uri)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise TrainingFailed(f"the {name} channel {uri} holds no CSV file. Fix: run the gather_data notebook.")
    frame = pd.concat([pd.read_csv(f, header=None, dtype="float64") for f in files], ignore_index=True)
    values = frame.to_numpy()
    return values[:, 1:], values[:, 0]
