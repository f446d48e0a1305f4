"""Training semantics, the model.tar.gz artifact (plain tarfile + xgboost can read it), and refusals."""

from __future__ import annotations

import gzip
import io
import pickle
import re
import tarfile

import numpy as np
import pytest
import xgboost

from modelops.config import load_model_config
from modelops.errors import ConfigError, StoreError
from modelops.training.train import check_hyperparameters, fit, job_name, pack_model, unpack_model, xgboost_params
from tests.support.paths import ROOT


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.random((400, 5))
    y = X @ np.array([3.0, -2.0, 1.0, 0.0, 0.5]) + rng.normal(0, 0.1, 400)
    return X[:300], y[:300], X[300:], y[300:]


def test_num_round_and_per_round_validation_metric(data):
    result = fit(*data, {"objective": "reg:squarederror", "num_round": 12, "max_depth": 3, "eval_metric": "rmse"})
    assert result.rounds == 12 and result.booster.num_boosted_rounds() == 12
    assert result.eval_metric == "rmse"
    assert len(result.curves["train"]) == len(result.curves["validation"]) == 12
    assert result.curves["validation"][-1] < result.curves["validation"][0]
    assert re.match(r"\[0\]#011train-rmse:[\d.]+#011validation-rmse:[\d.]+", result.log_lines[0])
    assert result.best_iteration is None


def test_early_stopping_watches_the_validation_split(data):
    X, y, Xv, yv = data
    noise = np.random.default_rng(1).random(len(yv)) * 100  # an unlearnable validation set stops early
    result = fit(X, y, Xv, noise, {"objective": "reg:squarederror", "num_round": 200, "early_stopping_rounds": 5})
    assert result.rounds < 200 and result.best_iteration is not None


def test_artifact_is_sagemaker_layout_and_reloads_identically(data):
    X, y, Xv, yv = data
    booster = fit(*data, {"objective": "reg:squarederror", "num_round": 20}).booster
    packed = pack_model(booster)
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        assert tar.getnames() == ["xgboost-model"]
        raw = tar.extractfile("xgboost-model").read()
    plain = xgboost.Booster()
    plain.load_model(bytearray(raw))  # what the SageMaker container does
    assert np.array_equal(plain.predict(xgboost.DMatrix(Xv)), booster.predict(xgboost.DMatrix(Xv)))
    assert np.array_equal(unpack_model(packed).inplace_predict(Xv), booster.inplace_predict(Xv))
    assert pack_model(booster) == packed  # no timestamps: the same model has the same sha256


def test_truncated_and_corrupt_artifacts_are_refused(data):
    packed = pack_model(fit(*data, {"objective": "reg:squarederror", "num_round": 3}).booster)
    with pytest.raises(StoreError, match="truncated or corrupt"):
        unpack_model(packed[: len(packed) // 2])
    with pytest.raises(StoreError, match="truncated or corrupt"):
        unpack_model(b"not a tarball")


def test_pickled_model_is_refused():
    payload = pickle.dumps({"not": "a model"})
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("xgboost-model")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(StoreError, match="pickled models are refused"):
        unpack_model(buffer.getvalue())


def test_an_archive_without_a_model_file_is_refused():
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("../../etc/evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(StoreError, match="has no xgboost-model"):
        unpack_model(buffer.getvalue())


def test_hyperparameters_xgboost_rejects_are_a_config_error():
    with pytest.raises(ConfigError, match=r"xgboost rejected the hyperparameters.*Fix"):
        check_hyperparameters({"objective": "reg:nonsense", "num_round": 5})
    with pytest.raises(ConfigError, match="not supported by local training"):
        xgboost_params({"objective": "reg:squarederror", "num_round": 5, "csv_weights": 1})
    for folder in ("abalone_model", "churn_model"):
        check_hyperparameters(load_model_config(ROOT / folder).training.hyperparameters)


def test_defaults_follow_the_container_and_limit_threads(monkeypatch):
    import modelops.training.threads

    monkeypatch.delenv("MODELOPS_TRAIN_THREADS", raising=False)
    monkeypatch.setattr(modelops.training.threads, "fair_share", lambda parallel=1: 3)  # what this machine allows now
    params, rounds, early = xgboost_params({"objective": "binary:logistic", "num_round": 7, "eta": 0.3})
    assert (rounds, early) == (7, None)
    assert params == {"objective": "binary:logistic", "eta": 0.3, "nthread": 3, "seed": 0, "verbosity": 1}
    monkeypatch.setenv("MODELOPS_TRAIN_THREADS", "2")
    assert xgboost_params({"objective": "binary:logistic", "num_round": 1})[0]["nthread"] == 2
    assert xgboost_params({"objective": "binary:logistic", "num_round": 1, "nthread": 1})[0]["nthread"] == 1


def test_job_names_are_valid_sagemaker_names():
    name = job_name("a" * 40)
    assert len(name) <= 63 and re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", name)
    assert job_name("m") != job_name("m")


def test_early_stopping_keeps_the_best_iteration_as_the_container_does():
    """The container's EarlyStopping(save_best=True): the artifact ends at the best round, so it predicts exactly
    as a model trained for best_iteration + 1 rounds without early stopping."""
    import numpy as np

    from modelops.training.train import fit

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = X[:, 0] + rng.normal(0, 1.0, 400)
    hyper = {"objective": "reg:squarederror", "eta": 0.5, "max_depth": 6, "num_round": 200, "eval_metric": "rmse"}
    stopped = fit(X[:300], y[:300], X[300:], y[300:], {**hyper, "early_stopping_rounds": 5})
    assert stopped.best_iteration is not None and stopped.rounds < 200  # stopped early...
    assert stopped.booster.num_boosted_rounds() == stopped.best_iteration + 1  # ...and kept only the best rounds
    exact = fit(X[:300], y[:300], X[300:], y[300:], {**hyper, "num_round": stopped.best_iteration + 1})
    assert np.array_equal(stopped.booster.inplace_predict(X[300:]), exact.booster.inplace_predict(X[300:]))


def _write_channel(folder, X, y, parts: int) -> list:
    """A channel as gather writes it: headerless CSV, label first, empty cells for missing values, in files."""
    folder.mkdir()
    files = []
    for i, rows in enumerate(np.array_split(np.arange(len(y)), parts)):
        lines = [",".join("" if np.isnan(v) else repr(float(v)) for v in (y[r], *X[r])) for r in rows]
        path = folder / f"part-{i:05d}.csv"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    return files


@pytest.mark.parametrize("stream", [True, False], ids=["quantised", "dmatrix"])
@pytest.mark.parametrize("tree_method", [None, "hist", "approx", "exact"])
def test_a_channel_streamed_in_blocks_trains_the_model_its_arrays_train(tmp_path, monkeypatch, tree_method, stream):
    """Channel files read in blocks (several files, each in several blocks, missing cells), streamed into a
    QuantileDMatrix when memory is short or into one DMatrix, give the booster one DMatrix of the same rows gives:
    same predictions, same curves."""
    from modelops.training import channels
    from modelops.training.train import fit_channels

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(0, 0.5, 3000) > 0).astype(np.float32)
    monkeypatch.setattr(channels, "BLOCK_BYTES", 16 << 10)  # ~150 rows a block: about 7 blocks per file
    monkeypatch.setattr(channels, "_memory_budget", lambda: 0 if stream else 1 << 40)
    built = []
    monkeypatch.setattr(channels, "quantised", lambda *a, _q=channels.quantised, **k: built.append(1) or _q(*a, **k))
    train = _write_channel(tmp_path / "train", X[:2400], y[:2400], parts=3)
    validation = _write_channel(tmp_path / "validation", X[2400:], y[2400:], parts=1)
    assert len(list(channels.blocks(train))) > 3
    hyperparameters = {"objective": "binary:logistic", "num_round": 15, "max_depth": 4, "eval_metric": "logloss",
                       "max_bin": 64, **({"tree_method": tree_method} if tree_method else {})}
    streamed = fit_channels(train, validation, hyperparameters)
    whole = fit(X[:2400], y[:2400], X[2400:], y[2400:], hyperparameters)
    assert len(built) == (2 if stream and tree_method in (None, "hist") else 0)
    assert streamed.curves == whole.curves
    np.testing.assert_array_equal(streamed.booster.inplace_predict(X), whole.booster.inplace_predict(X))
    Xr, yr = channels.read_arrays(train)
    np.testing.assert_array_equal(Xr, X[:2400])
    np.testing.assert_array_equal(yr, y[:2400])


def test_an_empty_channel_file_is_skipped_and_a_channel_without_files_is_named(tmp_path):
    from modelops.errors import TrainingFailed
    from modelops.training import channels

    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingFailed, match="the train channel s3://b/train holds no CSV file"):
        channels.channel_files(tmp_path / "empty", "s3://b/train", "train")
    (tmp_path / "empty" / "a.csv").write_text("")
    (tmp_path / "empty" / "b.csv").write_text("1,2.5,\n0,,3\n")
    X, y = channels.read_arrays(channels.channel_files(tmp_path / "empty", "s3://b/train", "train"))
    assert y.tolist() == [1.0, 0.0] and X.shape == (2, 2) and np.isnan(X[0, 1]) and np.isnan(X[1, 0])
