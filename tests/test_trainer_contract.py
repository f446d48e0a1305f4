"""The Trainer contract: both trainers train the same data to the same model (local: in-process; SageMaker: moto).

moto stores training jobs but runs nothing: a job is Completed the moment it is created, with no artifact
and no log. ``XGBoostContainer`` plays the built-in XGBoost container for those jobs, with botocore event
handlers on the trainer's own SageMaker client, so moto still validates and stores every request and answers
every call (CreateTrainingJob, DescribeTrainingJob, S3, CloudWatch Logs). It does what the container and
SageMaker do with a job, as read in aws/sagemaker-xgboost-container and aws/sagemaker-containers:

- CreateTrainingJob is refused (ValidationException, SageMaker's wording) when a channel's S3 prefix holds no
  object, before any job exists;
- the hyperparameters arrive as strings and are parsed as the container's toolkit does (JSON, else the text);
  num_round is required;
- every object under a channel's prefix is read as headerless CSV, label first; training is XGBoost with the
  container's defaults (``modelops.training.train.fit``, the code the local trainer runs too, so both sides must
  agree exactly: the suite checks the wiring around it, not XGBoost);
- ``<S3OutputPath>/<job>/output/model.tar.gz`` and the per-round log lines in CloudWatch
  (``/aws/sagemaker/TrainingJobs``, stream ``<job>/algo-1-<epoch>``) are written;
- a job the container fails is reported by DescribeTrainingJob as Failed, with the FailureReason the training
  toolkit writes ("AlgorithmError: framework error:" and the traceback, the toolkit's UserError naming the
  hyperparameter, as users quote them in the issues of aws/amazon-sagemaker-examples).

No Stubber is needed here. StopTrainingJob (which moto lacks) is only called when a job outlives its timeout;
tests/test_sagemaker_backend.py covers that with a Stubber.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import pytest
import xgboost

from modelops.entities import TrainingSpec
from modelops.errors import ConfigError, TrainingFailed
from modelops.training.train import fit, unpack_model
from tests.support.container import XGBoostContainer
from tests.support.contract import BACKENDS, backend_for

#: The only place where the suite asks which trainer it has.
DIFFERENCES = {
    # The XGBoost version recorded: the one installed here (local), or the container's major.minor (SageMaker).
    "xgboost_version": {"local": xgboost.__version__, "sagemaker": "3.2"},
    # Not tested here, said here: the local trainer runs in this process, so it ignores instance_type,
    # instance_count and max_runtime_seconds (no timeout); SageMaker stops a job past its max runtime
    # (tests/test_sagemaker_backend.py::test_training_job_wait_times_out_and_stops_the_job).
}
CONTAINER = "3.2-0"
#: What the SageMaker SDK answers for the 3.2-0 image in us-east-1 (checked against the SDK itself in
#: tests/test_sagemaker_backend.py; importing the SDK takes ~8 s, too slow for every test here).
SAGEMAKER_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"


def dataset(rows: int, seed: int, *, target=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = np.round(rng.random((rows, 4)) * 10, 3)
    y = X @ np.array([0.5, -0.2, 0.1, 0.0]) + np.round(rng.normal(0, 0.3, rows), 3) if target is None else target(X)
    return np.column_stack([y, X])


TRAIN, VALIDATION = dataset(120, 0), dataset(40, 1)
HYPERPARAMETERS = {"objective": "reg:squarederror", "num_round": 8, "max_depth": 3, "eta": 0.3, "eval_metric": "rmse"}


def csv(rows: np.ndarray) -> bytes:
    buffer = io.StringIO()
    np.savetxt(buffer, rows, delimiter=",", fmt="%.6g")
    return buffer.getvalue().encode()


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    backend = backend_for(request, tmp_path)
    if backend.name == "sagemaker":
        backend.trainer.image_uri = lambda version: SAGEMAKER_IMAGE.replace(CONTAINER, version)
        XGBoostContainer(backend.trainer.sagemaker)
    return backend


def spec_for(backend, job: str = "m-20261130-120000-beef", *, train=TRAIN, validation=VALIDATION,
             **hyperparameters) -> TrainingSpec:
    store = backend.store
    for name, rows in (("train", train), ("validation", validation)):
        if rows is not None:
            store.put_bytes(store.uri("m", "datasets", "d1", name, f"{name}.csv"), csv(rows), content_type="text/csv")
    root = store.uri("m", "datasets", "d1")
    return TrainingSpec(model="m", job_name=job, container_version=CONTAINER,
                        hyperparameters={**HYPERPARAMETERS, **hyperparameters}, train_uri=f"{root}/train/",
                        validation_uri=f"{root}/validation/", output_uri=store.uri("m", "training", job))


def in_process(**hyperparameters):
    """The same training done here directly: what both trainers must reproduce."""
    return fit(TRAIN[:, 1:], TRAIN[:, 0], VALIDATION[:, 1:], VALIDATION[:, 0], {**HYPERPARAMETERS, **hyperparameters})


def test_trains_the_data_to_the_same_model_as_in_process(backend):
    spec = spec_for(backend)
    lines: list[str] = []
    result = backend.trainer.train(spec, log=lines.append)

    expected = in_process()
    artifact = backend.store.get_bytes(result.artifact_uri)
    assert result.job_name == spec.job_name
    assert result.artifact_uri == f"{spec.output_uri}/output/model.tar.gz"
    assert result.artifact_sha256 == hashlib.sha256(artifact).hexdigest()
    rows = VALIDATION[:, 1:]
    assert np.array_equal(unpack_model(artifact).inplace_predict(rows), expected.booster.inplace_predict(rows))
    assert result.image == backend.trainer.image_uri(CONTAINER) and result.container_version == CONTAINER
    assert result.xgboost_version == DIFFERENCES["xgboost_version"][backend.name]
    assert result.hyperparameters == spec.hyperparameters  # as given, not as strings
    assert result.eval_metric == "rmse" and result.rounds == 8 and result.best_iteration is None
    assert set(result.curves) == {"train", "validation"}
    for channel in ("train", "validation"):  # the log has 5 decimals: the SageMaker side reads it from there
        assert result.curves[channel] == pytest.approx(expected.curves[channel], abs=6e-6)
    assert result.duration_seconds >= 0
    log = backend.store.get_bytes(result.log_uri).decode()
    assert re.search(r"^\[7\]#011train-rmse:[\d.]+#011validation-rmse:[\d.]+$", log, re.MULTILINE)
    assert any(spec.job_name in line and "Completed" in line for line in lines)
    assert any(re.match(r"\[\d+\]#011train-rmse:", line) for line in lines)


def test_early_stopping_reports_the_best_iteration(backend):
    noise = dataset(40, 2, target=lambda X: np.random.default_rng(3).random(len(X)) * 100)  # nothing to learn
    spec = spec_for(backend, validation=noise, num_round=200, early_stopping_rounds=3)
    result = backend.trainer.train(spec, log=lambda line: None)
    expected = fit(TRAIN[:, 1:], TRAIN[:, 0], noise[:, 1:], noise[:, 0], spec.hyperparameters)
    assert result.rounds == expected.rounds < 200
    assert result.best_iteration == expected.best_iteration is not None


@pytest.mark.parametrize(("hyperparameters", "named"), [
    ({"max_depth": -1}, "max_depth"),
    ({"objective": "reg:nonsense"}, "reg:nonsense"),
    ({"eta": "abc"}, "abc"),
])
def test_hyperparameters_xgboost_refuses_are_a_config_error(backend, hyperparameters, named):
    with pytest.raises(ConfigError, match=rf"(?s)refused|rejected.*{re.escape(named)}.*Fix: correct "
                                          rf"training\.hyperparameters"):
        backend.trainer.train(spec_for(backend, **hyperparameters), log=lambda line: None)


def test_a_missing_num_round_is_a_config_error(backend):
    spec = spec_for(backend)
    spec = TrainingSpec(**{**spec.__dict__, "hyperparameters": {"objective": "reg:squarederror"}})
    with pytest.raises(ConfigError, match=r"(?i)num_round.*Fix:"):
        backend.trainer.train(spec, log=lambda line: None)


def test_data_the_algorithm_cannot_train_on_fails_with_the_reason(backend):
    labels = dataset(120, 0, target=lambda X: np.full(len(X), 5.0))  # not a probability
    spec = spec_for(backend, train=labels, validation=labels, objective="binary:logistic", eval_metric="logloss")
    with pytest.raises(TrainingFailed, match=r"base_score must be in \(0,1\) for the logistic loss"):
        backend.trainer.train(spec, log=lambda line: None)


def test_an_empty_channel_fails_naming_it(backend):
    spec = spec_for(backend, validation=None)
    with pytest.raises(TrainingFailed, match=re.escape(spec.validation_uri.rstrip("/"))):
        backend.trainer.train(spec, log=lambda line: None)
