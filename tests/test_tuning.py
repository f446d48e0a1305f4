"""Hyperparameter search: the space in model.yml, the local Optuna tuner, applying the result to model.yml."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops.backends.local import LocalBackend
from modelops.config import load_model_config, parse_model_config
from modelops.data.datasets import write_dataset
from modelops.data.prepare import split_frame
from modelops.data.sources import FetchedSource
from modelops.errors import ConfigError, TuningFailed
from modelops.training.tuning import (
    apply_hyperparameters,
    distributions,
    search_key,
    static_hyperparameters,
    tune_model,
    tuning_job_name,
    tuning_spec,
)
from tests.support.paths import ROOT
from tests.support.tables import TOY


def toy_config(**changes):
    raw = yaml.safe_load(yaml.safe_dump(TOY))
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value
    return parse_model_config(raw)


def toy_dataset(home: Path, config, rows: int = 300, seed: int = 0):
    """A regression dataset written to a local backend's store as gather_data writes one."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4))
    y = 3 * X[:, 0] + np.sin(2 * X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(0, 0.3, rows)
    frame = pd.DataFrame({"y": y, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "d": X[:, 3]})
    backend = LocalBackend(home)
    raw = FetchedSource("toy.csv", home / "toy.csv", hashlib.sha256(frame.to_csv().encode()).hexdigest(), 1, "local")
    return backend, write_dataset(backend.store, config, raw, split_frame(frame, config.split))


def test_the_search_space_in_model_yml_as_optuna_and_as_sagemaker_see_it():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from modelops.backends.sagemaker.tuner import parameter_ranges

    config = toy_config(**{"tuning.parameters.tree_method": {"categorical": ["hist", "approx"]},
                           "tuning.parameters.lambda": {"float": [0.01, 100], "log": True}})
    assert distributions(config.tuning.parameters) == {
        "max_depth": IntDistribution(2, 6), "eta": FloatDistribution(0.05, 0.5, log=True),
        "subsample": FloatDistribution(0.6, 1.0), "tree_method": CategoricalDistribution(["hist", "approx"]),
        "lambda": FloatDistribution(0.01, 100.0, log=True)}
    spec = tuning_spec(LocalBackend(Path("/nonexistent")), config, _Dataset())
    assert parameter_ranges(spec) == {
        "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "6", "ScalingType": "Linear"}],
        "ContinuousParameterRanges": [
            {"Name": "eta", "MinValue": "0.05", "MaxValue": "0.5", "ScalingType": "Logarithmic"},
            {"Name": "subsample", "MinValue": "0.6", "MaxValue": "1.0", "ScalingType": "Linear"},
            {"Name": "lambda", "MinValue": "0.01", "MaxValue": "100.0", "ScalingType": "Logarithmic"}],
        "CategoricalParameterRanges": [{"Name": "tree_method", "Values": ["hist", "approx"]}]}
    assert spec.objective == "validation:rmse" and not spec.maximize and spec.max_trials == 6 and spec.seed == 7
    # Every trial trains with the round cap and early stopping on the objective; searched values come from the trial.
    assert spec.static_hyperparameters == {"objective": "reg:squarederror", "num_round": 80,
                                           "early_stopping_rounds": 8, "eval_metric": "rmse"}


class _Dataset:
    dataset_id = "0123456789abcdef"
    channel_uris = {"train": "file:///d/train/", "validation": "file:///d/validation/", "test": "file:///d/test/"}


def test_shipped_models_declare_a_search_that_parses():
    for model, objective in (("abalone_model", "validation:rmse"), ("churn_model", "validation:auc")):
        config = load_model_config(ROOT / model)
        assert config.tuning.objective == objective and len(config.tuning.parameters) >= 5
        assert config.tuning.maximize == (objective == "validation:auc")


@pytest.mark.parametrize(("change", "message"), [
    ({"tuning.parameters.num_round": {"int": [10, 100]}}, "'tuning.parameters.num_round' cannot be searched: the "
                                                          "search sets it itself"),
    ({"tuning.parameters.max_dept": {"int": [2, 6]}}, "not a SageMaker XGBoost hyperparameter (did you mean "
                                                      "'max_depth'?)"),
    ({"tuning.parameters.max_depth": {"int": [2.5, 6]}}, "is an int range, but [2.5, 6] holds a fraction"),
    ({"tuning.parameters.eta": {"float": [0, 0.3], "log": True}}, "log-scaled, so its low must be above 0"),
    ({"tuning.parameters.eta": {"float": [0.3, 0.1]}}, "has low 0.3 not below high 0.1"),
    ({"tuning.parameters.eta": {"float": [0.1, 0.3], "int": [1, 2]}}, "must give exactly one of int"),
    ({"tuning.objective": "validation:auc"}, "not a validation metric a regression search can optimise. Fix: use "
                                             "one of ['validation:rmse'"),
    ({"tuning.early_stopping_rounds": 80}, "(80) is not below tuning.max_rounds (80)"),
    ({"tuning.budget": {"trials": 0}}, "tuning.budget.trials"),
    ({"review": {"metrics": {"auc": {}}}}, "'review.metrics.auc' is not a metric of a regression model"),
    ({"review": {"min_absolute_change": 0}}, "review.min_absolute_change"),
    ({"review": {"min_relative_change": 1.5}}, "review.min_relative_change"),
    ({"review": {"resamples": 200}}, "review.resamples"),
])
def test_a_wrong_tuning_or_review_section_names_the_key_and_the_fix(change, message):
    with pytest.raises(ConfigError) as error:
        toy_config(**change)
    assert message in str(error.value)


def test_review_rules_default_to_the_primary_metric_with_the_global_minimum_changes():
    config = toy_config(review={"min_relative_change": 0.01, "metrics": {"rmse": {"min_absolute_change": 0.02},
                                                                         "r2": None}})
    rmse, r2 = config.review.decided_on("regression")
    assert (rmse.min_absolute_change, rmse.min_relative_change) == (0.02, 0.01)
    assert (r2.min_absolute_change, r2.min_relative_change) == (None, 0.01)
    [only] = toy_config().review.decided_on("regression")
    assert only.metric == "rmse" and only.describe() == "any improvement"


def test_one_search_is_one_key_applying_its_result_does_not_start_it_over():
    config = toy_config()
    key = search_key(config, _Dataset())
    applied = replace(config, training=replace(config.training, hyperparameters={
        **config.training.hyperparameters, "max_depth": 5, "eta": 0.1234, "num_round": 57}))
    assert search_key(applied, _Dataset()) == key  # the searched values and num_round are not part of it
    other_data = type("D", (_Dataset,), {"dataset_id": "fedcba9876543210"})()
    assert search_key(config, other_data) != key
    assert search_key(toy_config(**{"training.hyperparameters.gamma": 1}), _Dataset()) != key  # a static change
    assert static_hyperparameters(applied)["num_round"] == 80
    for name in (tuning_job_name("abalone-model", key), tuning_job_name("a" * 40), tuning_job_name("x-" * 20)):
        assert len(name) <= 32 and name[0].isalnum() and name[-1].isalnum() and "--" not in name[-13:]


@pytest.mark.slow  # real searches: seconds of XGBoost and Optuna
def test_local_search_is_seeded_and_never_reads_the_test_split(tmp_path, monkeypatch):
    from modelops.backends.local import store

    config = toy_config()
    read = []
    original_path, original_get = store.LocalStore.path, store.LocalStore.get_bytes
    monkeypatch.setattr(store.LocalStore, "path", lambda self, uri: read.append(uri) or original_path(self, uri))
    monkeypatch.setattr(store.LocalStore, "get_bytes",
                        lambda self, uri: read.append(uri) or original_get(self, uri))
    outcomes = []
    for home in ("one", "two"):
        backend, dataset = toy_dataset(tmp_path / home, config)
        read.clear()
        tuning = tune_model(backend, config, dataset, log=lambda line: None)
        outcomes.append(tuning)
        assert read and not [uri for uri in read if "/test/" in uri]  # train and validation only
    one, two = outcomes
    assert [(t.hyperparameters, t.value, t.state) for t in one.result.trials] == \
        [(t.hyperparameters, t.value, t.state) for t in two.result.trials]  # the same seed, the same search
    assert len(one.result.trials) == 6 and one.result.best is not None
    best = one.result.best
    assert one.tuned["max_depth"] == best.hyperparameters["max_depth"]
    assert one.tuned["eta"] == float(f"{best.hyperparameters['eta']:.4g}")  # rounded as it will be committed
    assert 1 <= one.tuned["num_round"] <= 80 and "num_round" in one.changes
    record = one.record
    assert record.objective == "validation:rmse" and record.trials == 6 and record.best_value == best.value
    assert record.tuned_value == one.validation_tuned["rmse"] and record.current_value == one.validation_current["rmse"]
    assert record.tuned_value < record.current_value  # ten rounds of depth 2 against a search
    assert set(one.comparison_table().columns) == {"current", "tuned", "improvement"}
    assert one.trials_table().shape[0] == 6 and {"state", "validation:rmse", "rounds", "eta"} <= set(
        one.trials_table().columns)


@pytest.mark.slow  # real searches: seconds of XGBoost and Optuna
def test_an_interrupted_search_resumes_from_its_finished_trials(tmp_path, monkeypatch):
    from modelops.backends.local import tuner

    monkeypatch.setattr(tuner, "LOG_EVERY", 1)  # a line per trial, so the interruption lands after the third
    config = toy_config()
    backend, dataset = toy_dataset(tmp_path / "home", config)
    lines = []

    def interrupt_after_three(line):
        lines.append(line)
        if sum(entry.startswith("trial ") for entry in lines) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the search

    with pytest.raises(KeyboardInterrupt):
        tune_model(backend, config, dataset, log=interrupt_after_three)
    database = tmp_path / "home" / "tuning" / "toy-model.db"
    assert database.is_file()
    resumed = tune_model(backend, config, dataset, log=lines.append)
    assert resumed.result.resumed_trials == 3 and len(resumed.result.trials) == 6
    assert any("resuming, 3 trial(s) already finished" in line for line in lines)
    # The budget is the search's total: asking again for 6 runs nothing; asking for 8 runs 2 more.
    again = tune_model(backend, config, dataset, log=lines.append)
    assert again.result.resumed_trials == 6 and len(again.result.trials) == 6
    more = tune_model(backend, config, dataset, trials=8, log=lines.append)
    assert more.result.resumed_trials == 6 and len(more.result.trials) == 8


@pytest.mark.slow  # real searches: seconds of XGBoost and Optuna
def test_hopeless_trials_are_pruned(tmp_path, monkeypatch):
    from modelops.backends.local import tuner

    monkeypatch.setattr(tuner, "PRUNER_STARTUP_TRIALS", 2)
    monkeypatch.setattr(tuner, "PRUNER_WARMUP_ROUNDS", 5)
    config = toy_config(**{"tuning.budget": {"trials": 14}, "tuning.parameters.eta": {"float": [0.001, 0.5],
                                                                                      "log": True}})
    backend, dataset = toy_dataset(tmp_path / "home", config)
    result = tune_model(backend, config, dataset, log=lambda line: None).result
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned and all(t.value is not None and t.rounds is None for t in pruned)


@pytest.mark.slow  # real searches: seconds of XGBoost and Optuna
def test_a_search_where_no_trial_completes_says_so(tmp_path):
    config = toy_config(**{"tuning.parameters.max_depth": {"categorical": [-3]}})
    backend, dataset = toy_dataset(tmp_path / "home", config)
    with pytest.raises(TuningFailed, match=r"no trial completed \(6 finished: 0 pruned, 6 failed\)"):
        tune_model(backend, config, dataset, log=lambda line: None)


def test_without_a_tuning_section_the_error_says_how_to_add_one(tmp_path):
    raw = yaml.safe_load(yaml.safe_dump(TOY))
    del raw["tuning"]
    config = parse_model_config(raw)
    with pytest.raises(ConfigError, match=r"has no tuning: section.*Fix: add one"):
        tune_model(LocalBackend(tmp_path), config, _Dataset())


MODEL_YML = """\
# A model with comments that must survive.
name: toy-model
problem_type: regression
data: {source: toy.csv, columns: [y, a, b, c, d], target: y}
split: {train: 0.6, validation: 0.2, test: 0.2, seed: 3}

training:
  container_version: "3.2-0"   # must match the installed xgboost
  hyperparameters:
    objective: reg:squarederror
    max_depth: 2       # shallow on purpose
    eta: 0.5
    num_round: 10
    early_stopping_rounds: 5

# The gates.
quality:
  rmse: {max: 100}
"""


def test_apply_writes_the_best_into_model_yml_keeping_comments_and_prints_the_diff(tmp_path):
    path = tmp_path / "model.yml"
    path.write_text(MODEL_YML)
    diff = apply_hyperparameters(path, {"max_depth": 5, "eta": 0.1234, "num_round": 57, "subsample": 0.8,
                                        "early_stopping_rounds": None})
    text = path.read_text()
    assert "# A model with comments that must survive." in text and "# must match the installed xgboost" in text
    assert "    max_depth: 5       # shallow on purpose" in text and "    subsample: 0.8" in text
    assert "early_stopping_rounds" not in text and "split: {train: 0.6, validation: 0.2" in text
    assert "    num_round: 57\n    subsample: 0.8\n\n# The gates.\nquality:" in text  # added after the last key
    assert "-    max_depth: 2       # shallow on purpose" in diff and "+    num_round: 57" in diff
    assert load_model_config(path).training.hyperparameters == {
        "objective": "reg:squarederror", "max_depth": 5, "eta": 0.1234, "num_round": 57, "subsample": 0.8}
    assert text.replace("max_depth: 5 ", "max_depth: 2 ").replace("eta: 0.1234", "eta: 0.5").replace(
        "num_round: 57\n    subsample: 0.8", "num_round: 10\n    early_stopping_rounds: 5") == MODEL_YML  # nothing else
    assert apply_hyperparameters(path, {"max_depth": 5}) == ""  # nothing to change


def test_apply_refuses_a_result_that_would_break_model_yml_and_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "model.yml"
    path.write_text(MODEL_YML)
    with pytest.raises(ConfigError, match="early_stopping_rounds' is not below num_round"):
        apply_hyperparameters(path, {"num_round": 3})
    assert path.read_text() == MODEL_YML
