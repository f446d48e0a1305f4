"""The Tuner contract: both tuners search the same way as the interface says (local: Optuna; SageMaker: moto).

What ``modelops.backends.base.Tuner.tune`` promises and both must do: run the search up to its total trial budget,
counting trials an earlier run of the same search finished; return every trial, numbered in order, with the
searched hyperparameters in their own types and inside their ranges; score trials on the validation channel and
read only the train and validation channels; record the objective's direction, so the best trial is the lowest
value or the highest; continue a search run again rather than start it over; raise TuningFailed when no trial
completes.

moto stores tuning jobs but runs none: a job is Completed the moment it is created, with a made-up best training
job, and ListTrainingJobsForHyperParameterTuningJob is not implemented. ``TuningService`` plays SageMaker's part
for those jobs with botocore event handlers on the tuner's own client, so moto still validates and stores every
request and answers the listing of earlier jobs that warm starts read:

- CreateHyperParameterTuningJob runs the job's training jobs here, MaxNumberOfTrainingJobs of them: each samples
  one value per parameter range (a seeded random search, where SageMaker's is Bayesian), trains as the built-in
  container does (``modelops.training.train.fit``) on the channels the request names, and reports the objective's
  last logged value on the validation channel, as SageMaker's tuning job records it;
- DescribeHyperParameterTuningJob finds a job InProgress on the first look, then Completed with its counters and
  best training job, or Failed when every training job failed;
- ListTrainingJobsForHyperParameterTuningJob answers the job's training jobs as SageMaker summarises them.

The request itself, the warm-start parents' selection, a job that fails or outlives its budget, and the states
moto cannot take are tested against SageMaker's shapes in tests/test_sagemaker_tuner.py.

Not in the contract, because the tuners differ (tests/test_tuning.py and tests/test_sagemaker_tuner.py cover
each): the same seed gives the same trials only locally (Optuna's seeded TPE; SageMaker's Bayesian search is its
own); hopeless trials are pruned by Optuna locally and stopped by SageMaker's early stopping (both PRUNED); a
local trial's value is its best iteration's, a SageMaker trial's the last one its training job logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost
import yaml

from modelops.config import SearchParameter, parse_model_config
from modelops.data.datasets import write_dataset
from modelops.data.prepare import split_frame
from modelops.data.sources import FetchedSource
from modelops.entities import COMPLETE
from modelops.errors import ConfigError, TrainingFailed, TuningFailed
from modelops.training import tuning
from modelops.training.train import fit
from modelops.training.tuning import tuning_spec
from tests.support.aws import answer, moto_client, remember_params
from tests.support.contract import BACKENDS, backend_for
from tests.support.tables import TOY

pytestmark = pytest.mark.slow  # real searches on both sides: XGBoost and Optuna, seconds a test

SAGEMAKER_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
REGRESSION = {
    **TOY,
    "tuning": {"parameters": {"max_depth": {"int": [2, 6]}, "eta": {"float": [0.05, 0.5], "log": True},
                              "tree_method": {"categorical": ["hist", "approx"]}},
               "budget": {"trials": 4}, "seed": 7, "max_rounds": 30, "early_stopping_rounds": 5},
}
BINARY = {
    **REGRESSION, "name": "toy-churn", "problem_type": "binary", "quality": {"auc": {"min": 0.5}},
    "data": {**REGRESSION["data"], "positive_label": 1},
    "training": {"container_version": "3.2-0", "hyperparameters": {
        "objective": "binary:logistic", "max_depth": 2, "eta": 0.5, "num_round": 10, "eval_metric": "auc"}},
    "tuning": {**REGRESSION["tuning"], "objective": "validation:auc"},
}


def config_for(raw: dict, **tuning_changes):
    raw = yaml.safe_load(yaml.safe_dump(raw))
    raw["tuning"].update(tuning_changes)
    return parse_model_config(raw)


def gathered(backend, config, *, rows: int = 240, validation_shift: float = 0.0):
    """A toy dataset of ``config``'s problem written to the backend's store as gather_data writes one."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4))
    if config.problem_type == "binary":
        y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(0, 0.5, rows) > 0).astype(float)
    else:
        y = 3 * X[:, 0] + np.sin(2 * X[:, 1]) + X[:, 2] * X[:, 3] + rng.normal(0, 0.3, rows)
    frame = pd.DataFrame({"y": y, "a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "d": X[:, 3]})
    splits = split_frame(frame, config.split)
    splits["validation"] = splits["validation"].assign(y=splits["validation"]["y"] + validation_shift)
    digest = hashlib.sha256(f"{frame.to_csv()}{validation_shift}".encode()).hexdigest()
    raw = FetchedSource("toy.csv", Path("toy.csv"), digest, rows, "local")
    return write_dataset(backend.store, config, raw, splits)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, monkeypatch):
    backend = backend_for(request, tmp_path)
    backend.reads = []  # every channel a search read
    if backend.name == "sagemaker":
        backend.tuner.image_uri = lambda version: SAGEMAKER_IMAGE.replace("3.2-0", version)
        TuningService(backend.tuner.sagemaker, backend.reads)
        # A SageMaker job's name carries the second it was started in; this suite starts several a second.
        names = count(1)
        monkeypatch.setattr(tuning, "tuning_job_name",
                            lambda model, key=None: f"{tuning.tuning_job_prefix(model)}{next(names):012d}aa")
    else:
        from modelops.backends.local.store import LocalStore

        path = LocalStore.path
        monkeypatch.setattr(LocalStore, "path", lambda self, uri: backend.reads.append(uri) or path(self, uri))
    return backend


@pytest.fixture
def trainings(monkeypatch) -> list[int]:
    """One entry per model trained (by the local tuner, or by ``TuningService`` for SageMaker)."""
    trained, train = [], xgboost.train
    monkeypatch.setattr(xgboost, "train", lambda *args, **kwargs: trained.append(1) or train(*args, **kwargs))
    return trained


def search(backend, config, dataset, trials: int | None = None):
    """The search ``tune_model`` starts for ``config`` on ``dataset``, run on the backend's tuner."""
    spec = tuning_spec(backend, config, dataset, trials=trials)
    return spec, backend.tuner.tune(spec, log=lambda line: None)


def test_a_search_runs_its_budget_of_trials_each_numbered_and_inside_the_space(backend, trainings):
    config = config_for(REGRESSION)
    spec, result = search(backend, config, gathered(backend, config))
    assert len(trainings) == 4 and len(result.trials) == 4 and result.resumed_trials == 0
    assert [t.number for t in result.trials] == [0, 1, 2, 3]
    assert [t.state for t in result.trials] == [COMPLETE] * 4 and all(t.value > 0 for t in result.trials)
    for trial in result.trials:
        assert set(trial.hyperparameters) == {"max_depth", "eta", "tree_method"}
        assert isinstance(trial.hyperparameters["max_depth"], int) and 2 <= trial.hyperparameters["max_depth"] <= 6
        assert isinstance(trial.hyperparameters["eta"], float) and 0.05 <= trial.hyperparameters["eta"] <= 0.5
        assert trial.hyperparameters["tree_method"] in ("hist", "approx")
    assert (result.objective, result.maximize) == ("validation:rmse", False)


@pytest.mark.parametrize("problem", [REGRESSION, BINARY], ids=["rmse-minimised", "auc-maximised"])
def test_the_best_trial_follows_the_objectives_direction(backend, problem):
    config = config_for(problem)
    spec, result = search(backend, config, gathered(backend, config))
    values = [t.value for t in result.trials if t.state == COMPLETE]
    assert result.objective == spec.objective and result.maximize == spec.maximize == (problem is BINARY)
    assert result.best.value == (max(values) if spec.maximize else min(values))
    if spec.maximize:
        assert all(0.5 < v <= 1 for v in values)  # AUCs of a learnable target


def test_trials_are_scored_on_the_validation_channel(backend):
    config = config_for(REGRESSION)
    # The validation targets sit 50 above what training sees: only a score on validation can be that far off.
    spec, result = search(backend, config, gathered(backend, config, validation_shift=50.0))
    assert all(40 < t.value < 60 for t in result.trials), [t.value for t in result.trials]


def test_a_search_reads_the_train_and_validation_channels_and_nothing_else(backend):
    config = config_for(REGRESSION)
    dataset = gathered(backend, config)
    backend.reads.clear()
    search(backend, config, dataset)
    assert {uri.rstrip("/") for uri in backend.reads} == {dataset.channel_uris[c].rstrip("/")
                                                          for c in ("train", "validation")}


def test_a_search_run_again_continues_where_it_stopped(backend, trainings):
    config = config_for(REGRESSION)
    dataset = gathered(backend, config)
    _, first = search(backend, config, dataset, trials=3)
    trainings.clear()
    _, more = search(backend, config, dataset, trials=5)  # a larger budget: the 2 trials still to run
    assert len(trainings) == 2 and more.resumed_trials == 3 and len(more.trials) == 5
    assert [t.number for t in more.trials] == [0, 1, 2, 3, 4]
    assert [(t.hyperparameters, t.value) for t in more.trials[:3]] == [(t.hyperparameters, t.value)
                                                                      for t in first.trials]
    trainings.clear()
    _, spent = search(backend, config, dataset, trials=5)  # the budget is spent: nothing runs
    assert trainings == [] and spent.resumed_trials == 5
    assert [(t.hyperparameters, t.value) for t in spent.trials] == [(t.hyperparameters, t.value)
                                                                   for t in more.trials]
    assert spent.best == more.best


def test_a_search_where_no_trial_completes_raises_tuning_failed_naming_it(backend):
    config = config_for(REGRESSION, parameters={"max_depth": {"categorical": [-3]}})
    spec = tuning_spec(backend, config, gathered(backend, config))
    with pytest.raises(TuningFailed, match=spec.job_name):
        backend.tuner.tune(spec, log=lambda line: None)


def test_a_search_space_the_tuner_rejects_is_a_config_error(backend):
    config = config_for(REGRESSION)
    spec = tuning_spec(backend, config, gathered(backend, config))
    backwards = (SearchParameter("max_depth", "int", 6, 2),)  # low above high
    with pytest.raises(ConfigError, match=r"max_depth' has low 6 not below high 2"):
        backend.tuner.tune(dataclasses.replace(spec, parameters=backwards), log=lambda line: None)


# -- SageMaker's side of a tuning job, for moto ----------------------------------------------------------------


class TuningService:
    """Runs moto's tuning jobs as SageMaker would (see the module docstring)."""

    def __init__(self, client, reads: list[str]):
        self.s3 = moto_client("s3")
        self.reads = reads
        self.jobs: dict[str, dict] = {}  # tuning job name -> {"request", "summaries", "described"}
        events = client.meta.events
        events.register("before-parameter-build.sagemaker.CreateHyperParameterTuningJob", self._check_request)
        events.register("after-call.sagemaker.CreateHyperParameterTuningJob", self._run_job)
        events.register("after-call.sagemaker.DescribeHyperParameterTuningJob", self._report)
        operation = "sagemaker.ListTrainingJobsForHyperParameterTuningJob"
        events.register(f"before-parameter-build.{operation}", remember_params)
        events.register(f"before-call.{operation}", self._list_training_jobs)

    def _check_request(self, params, **kwargs):
        for kind in ("IntegerParameterRanges", "ContinuousParameterRanges"):
            for bounds in params["HyperParameterTuningJobConfig"]["ParameterRanges"].get(kind, []):
                if float(bounds["MinValue"]) > float(bounds["MaxValue"]):
                    raise _client_error("CreateHyperParameterTuningJob", "ValidationException",
                                        f"The MinValue of hyperparameter {bounds['Name']} must be less than or "
                                        f"equal to its MaxValue.")
        self.jobs[params["HyperParameterTuningJobName"]] = {"request": params, "summaries": [], "described": 0}

    def _run_job(self, parsed, **kwargs):
        if parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 200) >= 300:
            return
        name = parsed["HyperParameterTuningJobArn"].rsplit("/", 1)[1]
        job = self.jobs[name]
        request = job["request"]
        config = request["HyperParameterTuningJobConfig"]
        definition = request["TrainingJobDefinition"]
        channels = {}
        for channel in definition["InputDataConfig"]:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            self.reads.append(uri)
            channels[channel["ChannelName"]] = self._read(uri)
        objective = config["HyperParameterTuningJobObjective"]
        statics = {k: _parsed(v) for k, v in definition["StaticHyperParameters"].items()}
        rng = np.random.default_rng([config.get("RandomSeed", 0), *name.encode()])
        started = datetime.now(UTC)
        for number in range(1, config["ResourceLimits"]["MaxNumberOfTrainingJobs"] + 1):
            tuned = _sample(config["ParameterRanges"], rng)
            summary = {"TrainingJobName": f"{name}-{number:03d}-{rng.bytes(4).hex()}",
                       "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}-{number:03d}",
                       "CreationTime": started + timedelta(milliseconds=number), "TrainingJobStatus": "Completed",
                       "TrainingStartTime": started, "TrainingEndTime": started + timedelta(seconds=1),
                       "TunedHyperParameters": tuned}
            try:
                result = fit(channels["train"][:, 1:], channels["train"][:, 0], channels["validation"][:, 1:],
                             channels["validation"][:, 0], {**statics, **{k: _parsed(v) for k, v in tuned.items()}})
            except (ConfigError, TrainingFailed) as exc:
                summary.update(TrainingJobStatus="Failed", FailureReason=f"AlgorithmError: {exc}"[:1024])
            else:
                summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                    "Type": objective["Type"], "MetricName": objective["MetricName"],
                    "Value": result.curves["validation"][-1]}
            job["summaries"].append(summary)

    def _report(self, parsed, **kwargs):
        job = self.jobs.get(parsed.get("HyperParameterTuningJobName"))
        if job is None:
            return
        job["described"] += 1
        summaries = job["summaries"]
        if job["described"] == 1:  # the first look finds it running, as a real job would be
            parsed.update(HyperParameterTuningJobStatus="InProgress",
                          TrainingJobStatusCounters={"InProgress": len(summaries)})
            return
        completed = [s for s in summaries if s["TrainingJobStatus"] == "Completed"]
        parsed["TrainingJobStatusCounters"] = {"Completed": len(completed),
                                               "NonRetryableError": len(summaries) - len(completed)}
        parsed.pop("BestTrainingJob", None)
        if not completed:
            parsed.update(HyperParameterTuningJobStatus="Failed", FailureReason=(
                "All training jobs failed. Please take a look at the training jobs failures."))
            return
        maximize = job["request"]["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] \
            == "Maximize"
        best = (max if maximize else min)(
            completed, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
        parsed.update(HyperParameterTuningJobStatus="Completed", BestTrainingJob=best)

    def _list_training_jobs(self, context, **kwargs):
        request = context["contract_params"]
        return answer({"TrainingJobSummaries": self.jobs[request["HyperParameterTuningJobName"]]["summaries"]})

    def _read(self, uri: str) -> np.ndarray:
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        keys = sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))
        return np.concatenate([np.loadtxt(io.BytesIO(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()),
                                          delimiter=",", ndmin=2) for key in keys])


def _sample(ranges: dict, rng) -> dict[str, str]:
    """One value per range, as SageMaker passes tuned hyperparameters: strings."""
    values = {}
    for bounds in ranges.get("IntegerParameterRanges", []) + ranges.get("ContinuousParameterRanges", []):
        low, high = float(bounds["MinValue"]), float(bounds["MaxValue"])
        if bounds.get("ScalingType") == "Logarithmic":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        integer = bounds in ranges.get("IntegerParameterRanges", [])
        values[bounds["Name"]] = str(int(round(value))) if integer else repr(float(value))
    for choice in ranges.get("CategoricalParameterRanges", []):
        values[choice["Name"]] = str(rng.choice(choice["Values"]))
    return values


def _parsed(value: str):
    """A hyperparameter as the container's toolkit reads it: JSON, else the text."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _client_error(operation: str, code: str, message: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
