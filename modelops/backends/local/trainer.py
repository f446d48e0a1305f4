"""Local trainer: in-process XGBoost on the channel CSVs, writing what a SageMaker training job writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from modelops.backends.base import Trainer
from modelops.backends.local.store import LocalStore
from modelops.entities import TrainingResult, TrainingSpec
from modelops.training.channels import channel_files, read_arrays
from modelops.training.train import fit_channels, pack_model


class LocalTrainer(Trainer):
    """Trains in this process; outputs go under ``spec.output_uri`` in the local store."""

    def __init__(self, store: LocalStore, image_uri):
        self.store = store
        self.image_uri = image_uri

    def train(self, spec: TrainingSpec, *, log=print) -> TrainingResult:
        import xgboost

        started = time.monotonic()
        log(f"{spec.job_name}: InProgress (local, xgboost {xgboost.__version__})")
        result = fit_channels(self._channel(spec.train_uri, "train"),
                              self._channel(spec.validation_uri, "validation"), spec.hyperparameters)
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

    def _channel(self, uri: str, name: str) -> list[Path]:
        return channel_files(self.store.path(uri), uri, name)


def read_channel(store: LocalStore, uri: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A channel's rows as float32 (features, labels). A channel is a prefix: every CSV file under it is read, as
    the container does.

    Raises:
        TrainingFailed: the channel holds no CSV file.
    """
    return read_arrays(channel_files(store.path(uri), uri, name))
