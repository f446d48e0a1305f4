"""The SageMaker tuner: the CreateHyperParameterTuningJob request, warm starts, the job's lifecycle and failures.

moto implements Create/Describe/ListHyperParameterTuningJobs (its jobs are Completed the moment they are created,
with a made-up best job) but not ListTrainingJobsForHyperParameterTuningJob, nor a job that runs or fails:
the request as SageMaker stores it and the choice of warm-start parents are tested on moto, the lifecycle against
``botocore.stub.Stubber`` with responses shaped as SageMaker's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber

from modelops.backends.sagemaker.tuner import tuning_job_request
from modelops.config import SearchParameter
from modelops.entities import TuningSpec
from modelops.errors import TuningFailed
from tests.support.aws import MOTO_ROLE

pytestmark = pytest.mark.slow  # moto

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.2-0"
PARAMETERS = (SearchParameter("max_depth", "int", 2, 10), SearchParameter("eta", "float", 0.01, 0.3, log=True),
              SearchParameter("tree_method", "categorical", values=("hist", "approx")))


def spec_for(store, job: str = "abalone-model-2611301200ab", **overrides) -> TuningSpec:
    root = store.uri("abalone-model", "datasets", "d1")
    values = dict(model="abalone-model", job_name=job, container_version="3.2-0",
                  static_hyperparameters={"objective": "reg:squarederror", "num_round": 1000,
                                          "early_stopping_rounds": 30, "eval_metric": "rmse"},
                  parameters=PARAMETERS, objective="validation:rmse", maximize=False, max_trials=20, max_seconds=None,
                  max_parallel=2, seed=1729, train_uri=f"{root}/train/", validation_uri=f"{root}/validation/",
                  output_uri=store.uri("abalone-model", "tuning", job), max_runtime_seconds=900)
    return TuningSpec(**{**values, **overrides})


def test_the_request_is_a_bayesian_search_of_the_containers_objective(sagemaker):
    spec = spec_for(sagemaker.store, max_seconds=3600)
    root = "s3://modelops-test/modelops/abalone-model"
    channel = {"ContentType": "text/csv", "CompressionType": "None"}
    expected = {
        "HyperParameterTuningJobName": "abalone-model-2611301200ab",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 2,
                               "MaxRuntimeInSeconds": 3600},
            "ParameterRanges": {
                "IntegerParameterRanges": [{"Name": "max_depth", "MinValue": "2", "MaxValue": "10",
                                            "ScalingType": "Linear"}],
                "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.01", "MaxValue": "0.3",
                                               "ScalingType": "Logarithmic"}],
                "CategoricalParameterRanges": [{"Name": "tree_method", "Values": ["hist", "approx"]}]},
            "TrainingJobEarlyStoppingType": "Auto",
            "RandomSeed": 1729},
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"objective": "reg:squarederror", "num_round": "1000",
                                      "early_stopping_rounds": "30", "eval_metric": "rmse"},
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "RoleArn": MOTO_ROLE,
            "InputDataConfig": [
                {"ChannelName": name, **channel, "DataSource": {"S3DataSource": {
                    "S3DataType": "S3Prefix", "S3Uri": f"{root}/datasets/d1/{name}/",
                    "S3DataDistributionType": "FullyReplicated"}}} for name in ("train", "validation")],
            "OutputDataConfig": {"S3OutputPath": f"{root}/tuning/abalone-model-2611301200ab"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 900}},
        "Tags": [{"Key": "modelops:model", "Value": "abalone-model"}],
    }
    request = tuning_job_request(spec, IMAGE, MOTO_ROLE)
    assert request == expected
    # botocore validates it against SageMaker's API model, and moto keeps what it was sent.
    client = sagemaker.tuner.sagemaker
    client.create_hyper_parameter_tuning_job(**request)
    stored = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=spec.job_name)
    assert stored["HyperParameterTuningJobConfig"] == expected["HyperParameterTuningJobConfig"]
    assert stored["TrainingJobDefinition"] == expected["TrainingJobDefinition"]
    # A maximised objective, a time budget under SageMaker's 120 s floor, fewer jobs than parallel slots.
    churn = tuning_job_request(spec_for(sagemaker.store, objective="validation:auc", maximize=True, max_seconds=30,
                                        max_trials=1), IMAGE, MOTO_ROLE)["HyperParameterTuningJobConfig"]
    assert churn["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:auc"}
    assert churn["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1,
                                       "MaxRuntimeInSeconds": 120}


def test_warm_start_parents_are_this_models_earlier_searches_on_identical_data_and_algorithm(sagemaker):
    client, tuner = sagemaker.tuner.sagemaker, sagemaker.tuner
    spec = spec_for(sagemaker.store)
    ours = tuning_job_request(spec, IMAGE, MOTO_ROLE)
    other_data = spec_for(sagemaker.store, job="abalone-model-2611290900aa",
                          train_uri="s3://modelops-test/modelops/abalone-model/datasets/d0/train/")
    other_statics = spec_for(sagemaker.store, job="abalone-model-2611291000bb",
                             static_hyperparameters={**spec.static_hyperparameters, "gamma": 1})
    other_model = spec_for(sagemaker.store, job="churn-model-2611291100cc", model="churn-model")
    for earlier in ("abalone-model-2611281200aa", "abalone-model-2611291200bb", other_data, other_statics,
                    other_model):
        request = tuning_job_request(earlier if isinstance(earlier, TuningSpec) else
                                     spec_for(sagemaker.store, job=earlier), IMAGE, MOTO_ROLE)
        client.create_hyper_parameter_tuning_job(**request)
    assert tuner.parents("abalone-model-", ours) == ["abalone-model-2611291200bb", "abalone-model-2611281200aa"]
    warm = tuning_job_request(spec, IMAGE, MOTO_ROLE, parents=["abalone-model-2611291200bb"], max_jobs=5)
    assert warm["WarmStartConfig"] == {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "abalone-model-2611291200bb"}],
        "WarmStartType": "IdenticalDataAndAlgorithm"}
    assert warm["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 5
    client.create_hyper_parameter_tuning_job(**{**warm, "HyperParameterTuningJobName": "abalone-model-2611301300cc"})
    stored = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="abalone-model-2611301300cc")
    assert stored["WarmStartConfig"] == warm["WarmStartConfig"]


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def described(job: str, status: str, counters: dict | None = None, **extra) -> dict:
    return {"HyperParameterTuningJobName": job, "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:"
            f"123456789012:hyper-parameter-tuning-job/{job}", "HyperParameterTuningJobStatus": status,
            "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {
                "MaxNumberOfTrainingJobs": 20, "MaxParallelTrainingJobs": 2}},
            "CreationTime": NOW, "TrainingJobStatusCounters": counters or {},
            "ObjectiveStatusCounters": {}, **extra}


def training_job(job: str, number: int, status: str, value: float | None, **tuned) -> dict:
    summary = {"TrainingJobName": f"{job}-{number:03d}-abcd1234", "TrainingJobArn": f"arn:x:{number}",
               "CreationTime": NOW + timedelta(minutes=number), "TrainingJobStatus": status,
               "TrainingStartTime": NOW + timedelta(minutes=number), "TrainingEndTime": NOW + timedelta(
                   minutes=number, seconds=42), "TunedHyperParameters": {k: str(v) for k, v in tuned.items()}}
    if value is not None:
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": "Minimize",
                                                                  "MetricName": "validation:rmse", "Value": value}
    if status == "Failed":
        summary["FailureReason"] = "AlgorithmError: out of memory"
    return summary


def test_a_tuning_job_is_watched_to_the_end_and_its_training_jobs_become_trials(sagemaker):
    spec = spec_for(sagemaker.store, max_trials=4)
    tuner = sagemaker.tuner
    lines = []
    jobs = [training_job(spec.job_name, 1, "Completed", 2.31, max_depth=3, eta=0.05, tree_method="hist"),
            training_job(spec.job_name, 2, "Stopped", 2.9, max_depth=9, eta=0.29, tree_method="approx"),
            training_job(spec.job_name, 3, "Completed", 2.12, max_depth=5, eta=0.031, tree_method="hist"),
            training_job(spec.job_name, 4, "Failed", None, max_depth=10, eta=0.3, tree_method="hist")]
    with Stubber(tuner.sagemaker) as stub:
        stub.add_response("list_hyper_parameter_tuning_jobs", {"HyperParameterTuningJobSummaries": []},
                          {"NameContains": "abalone-model-", "SortBy": "CreationTime", "SortOrder": "Descending",
                           "MaxResults": 100})
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:tuning"},
                          tuning_job_request(spec, IMAGE, MOTO_ROLE, max_jobs=4))
        stub.add_response("describe_hyper_parameter_tuning_job",
                          described(spec.job_name, "InProgress", {"InProgress": 2}))
        stub.add_response("describe_hyper_parameter_tuning_job", described(
            spec.job_name, "Completed", {"Completed": 2, "Stopped": 1, "NonRetryableError": 1},
            BestTrainingJob={**jobs[2], "FinalHyperParameterTuningJobObjectiveMetric": {
                "MetricName": "validation:rmse", "Value": 2.12}}))
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job",
                          {"TrainingJobSummaries": jobs[:2], "NextToken": "page-2"},
                          {"HyperParameterTuningJobName": spec.job_name, "MaxResults": 100})
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": jobs[2:]},
                          {"HyperParameterTuningJobName": spec.job_name, "MaxResults": 100, "NextToken": "page-2"})
        result = tuner.tune(spec, log=lines.append)
        stub.assert_no_pending_responses()
    assert [t.state for t in result.trials] == ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"]
    best = result.best
    assert best.value == 2.12 and best.hyperparameters == {"max_depth": 5, "eta": 0.031, "tree_method": "hist"}
    assert best.job_name == f"{spec.job_name}-003-abcd1234" and best.duration_seconds == 42
    assert result.storage == "arn:tuning" and result.parents == () and result.resumed_trials == 0
    assert lines[-2:] == [f"{spec.job_name}: InProgress; training jobs 2 InProgress",
                          f"{spec.job_name}: Completed; training jobs 2 Completed, 1 Stopped, 1 NonRetryableError; "
                          f"best validation:rmse 2.12"]


def test_a_rerun_warm_starts_and_counts_the_earlier_jobs_towards_the_budget(sagemaker):
    spec = spec_for(sagemaker.store, max_trials=3, job="abalone-model-2611301300cc")
    parent = "abalone-model-2611301200ab"
    earlier = [training_job(parent, 1, "Completed", 2.2, max_depth=4, eta=0.1, tree_method="hist"),
               training_job(parent, 2, "Completed", 2.15, max_depth=6, eta=0.05, tree_method="hist")]
    new = [training_job(spec.job_name, 5, "Completed", 2.11, max_depth=6, eta=0.04, tree_method="approx")]
    tuner = sagemaker.tuner
    parent_request = tuning_job_request(spec_for(sagemaker.store, job=parent), IMAGE, MOTO_ROLE)
    with Stubber(tuner.sagemaker) as stub:
        stub.add_response("list_hyper_parameter_tuning_jobs", {"HyperParameterTuningJobSummaries": [
            {"HyperParameterTuningJobName": parent, "HyperParameterTuningJobArn": "arn:p",
             "HyperParameterTuningJobStatus": "Completed", "Strategy": "Bayesian", "CreationTime": NOW,
             "TrainingJobStatusCounters": {}, "ObjectiveStatusCounters": {}, "ResourceLimits": {
                 "MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2}}]})
        stub.add_response("describe_hyper_parameter_tuning_job", described(
            parent, "Completed", HyperParameterTuningJobConfig=parent_request["HyperParameterTuningJobConfig"],
            TrainingJobDefinition=parent_request["TrainingJobDefinition"]), {"HyperParameterTuningJobName": parent})
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": earlier})
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:new"},
                          tuning_job_request(spec, IMAGE, MOTO_ROLE, parents=[parent], max_jobs=1))
        stub.add_response("describe_hyper_parameter_tuning_job", described(spec.job_name, "Completed",
                                                                           {"Completed": 1}))
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": new})
        result = tuner.tune(spec, log=lambda line: None)
        stub.assert_no_pending_responses()
    assert result.parents == (parent,) and result.resumed_trials == 2 and len(result.trials) == 3
    assert result.best.value == 2.11 and [t.number for t in result.trials] == [0, 1, 2]


def test_a_spent_budget_starts_no_job(sagemaker):
    spec = spec_for(sagemaker.store, max_trials=2, job="abalone-model-2611301300cc")
    parent = "abalone-model-2611301200ab"
    tuner = sagemaker.tuner
    parent_request = tuning_job_request(spec_for(sagemaker.store, job=parent), IMAGE, MOTO_ROLE)
    with Stubber(tuner.sagemaker) as stub:
        stub.add_response("list_hyper_parameter_tuning_jobs", {"HyperParameterTuningJobSummaries": [
            {"HyperParameterTuningJobName": parent, "HyperParameterTuningJobArn": "arn:p",
             "HyperParameterTuningJobStatus": "Completed", "Strategy": "Bayesian", "CreationTime": NOW,
             "TrainingJobStatusCounters": {}, "ObjectiveStatusCounters": {}}]})
        stub.add_response("describe_hyper_parameter_tuning_job", described(
            parent, "Completed", HyperParameterTuningJobConfig=parent_request["HyperParameterTuningJobConfig"],
            TrainingJobDefinition=parent_request["TrainingJobDefinition"]))
        stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", {"TrainingJobSummaries": [
            training_job(parent, 1, "Completed", 2.2, max_depth=4, eta=0.1, tree_method="hist"),
            training_job(parent, 2, "Stopped", 2.6, max_depth=9, eta=0.3, tree_method="hist")]})
        result = tuner.tune(spec, log=lambda line: None)  # no create_hyper_parameter_tuning_job call
        stub.assert_no_pending_responses()
    assert result.job_name == parent and result.best.value == 2.2


def test_a_failed_tuning_job_raises_with_its_failure_reason(sagemaker):
    spec = spec_for(sagemaker.store)
    tuner = sagemaker.tuner
    with Stubber(tuner.sagemaker) as stub:
        stub.add_response("list_hyper_parameter_tuning_jobs", {"HyperParameterTuningJobSummaries": []})
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:t"})
        stub.add_response("describe_hyper_parameter_tuning_job", described(
            spec.job_name, "Failed", {"NonRetryableError": 3},
            FailureReason="All training jobs failed. Please take a look at the training jobs failures."))
        with pytest.raises(TuningFailed, match=r"tuning job abalone-model-2611301200ab Failed: All training jobs "
                                               r"failed\. Please take a look at the training jobs failures\. Its "
                                               r"training jobs' logs are in CloudWatch"):
            tuner.tune(spec, log=lambda line: None)


def test_a_tuning_job_that_outlives_its_budget_is_stopped(sagemaker):
    spec = spec_for(sagemaker.store)
    tuner = sagemaker.tuner
    tuner.timeout_seconds = 0.0001
    with Stubber(tuner.sagemaker) as stub:
        stub.add_response("list_hyper_parameter_tuning_jobs", {"HyperParameterTuningJobSummaries": []})
        stub.add_response("create_hyper_parameter_tuning_job", {"HyperParameterTuningJobArn": "arn:t"})
        stub.add_response("describe_hyper_parameter_tuning_job", described(spec.job_name, "InProgress"))
        stub.add_response("stop_hyper_parameter_tuning_job", {}, {"HyperParameterTuningJobName": spec.job_name})
        with pytest.raises(TuningFailed, match=r"still InProgress after 0s; it was asked to stop"):
            tuner.tune(spec, log=lambda line: None)
        stub.assert_no_pending_responses()
