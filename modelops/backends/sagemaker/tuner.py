"""SageMaker tuner: a hyperparameter tuning job (Bayesian) over the built-in XGBoost container, watched until it ends.

The objective is the container's own metric name (``validation:rmse``, ``validation:auc``): SageMaker passes it
to every training job as ``_tuning_objective_metric``, and the container evaluates and early-stops on it.
SageMaker's own early stopping of hopeless training jobs (``TrainingJobEarlyStoppingType: Auto``) plays the part
of the local backend's pruning. A search run again with the same data, image, static hyperparameters and
objective warm-starts from this model's earlier tuning jobs (``IdenticalDataAndAlgorithm``), and their finished
training jobs count towards the budget, as the local study's finished trials do.

Differences from the local tuner, written down: SageMaker's Bayesian strategy is not Optuna's TPE, so the same
seed does not give the same trials; trials run ``budget.parallel`` at a time; the tuning job's objective value is
the last one the training job logged (with early stopping, a value up to ``early_stopping_rounds`` rounds after the
best), where the local tuner records the best iteration's.
"""

from __future__ import annotations

import math
import time

from modelops.backends.base import Tuner
from modelops.backends.sagemaker.aws import translated
from modelops.backends.sagemaker.polling import wait_until_ended
from modelops.backends.sagemaker.trainer import channels
from modelops.entities import COMPLETE, FAILED, PRUNED, TuningResult, TuningSpec, TuningTrial
from modelops.errors import TuningFailed

#: SageMaker allows at most 5 parent jobs in a warm start.
MAX_PARENTS = 5
#: Earlier tuning jobs of the model looked at (newest first) when choosing warm-start parents.
PARENT_CANDIDATES = 20
#: A tuning job's shortest MaxRuntimeInSeconds.
MIN_RUNTIME_SECONDS = 120


class SageMakerTuner(Tuner):
    """Creates a tuning job, streams its progress, and returns every training job of the search as a trial."""

    def __init__(self, sagemaker_client, role_arn: str, image_uri, *, poll_seconds: float = 30,
                 timeout_seconds: float | None = None):
        self.sagemaker = sagemaker_client
        self.role_arn = role_arn
        self.image_uri = image_uri
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds  # None: the budget (or every job's max runtime) plus 30 minutes

    def tune(self, spec: TuningSpec, *, log=print) -> TuningResult:
        from modelops.training.tuning import tuning_job_prefix

        self.check_space(spec)
        started = time.monotonic()
        image = self.image_uri(spec.container_version)
        request = tuning_job_request(spec, image, self.role_arn)
        parents = self.parents(tuning_job_prefix(spec.model), request)
        earlier = [trial for parent in parents for trial in self._trials(parent)]
        finished = [t for t in earlier if t["state"] in (COMPLETE, PRUNED)]
        remaining = spec.max_trials - len(finished)
        if parents:
            log(f"warm start from {', '.join(parents)}: {len(finished)} training job(s) already finished")
        if remaining <= 0:
            log(f"the budget of {spec.max_trials} trials is spent by the earlier jobs: no new tuning job")
            return self._result(spec, parents[0], earlier, [], parents, started, arn="")
        request = tuning_job_request(spec, image, self.role_arn, parents=parents, max_jobs=remaining)
        with translated(TuningFailed, f"creating tuning job {spec.job_name}",
                        "check the execution role (SAGEMAKER_EXECUTION_ROLE_ARN) and the account's quota of "
                        "concurrent training jobs"):
            arn = self.sagemaker.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
        log(f"{spec.job_name}: created ({remaining} training jobs, {spec.max_parallel} at a time, "
            f"{spec.objective} {spec.direction.lower()}d, {image})")
        job = self._wait(spec, remaining, log)
        status = job["HyperParameterTuningJobStatus"]
        if status == "Failed":
            reason = (job.get("FailureReason") or "no FailureReason given").rstrip(". ")
            raise TuningFailed(f"tuning job {spec.job_name} Failed: {reason}. Its training jobs' logs are in "
                               f"CloudWatch, /aws/sagemaker/TrainingJobs.")
        return self._result(spec, spec.job_name, earlier, self._trials(spec.job_name), parents, started, arn)

    def parents(self, prefix: str, request: dict) -> list[str]:
        """This model's earlier tuning jobs (newest first, at most 5) that a warm start of type
        IdenticalDataAndAlgorithm accepts: same data, image, static hyperparameters and objective."""
        candidates, token = [], None
        while len(candidates) < PARENT_CANDIDATES:
            page_request = {"NameContains": prefix, "SortBy": "CreationTime", "SortOrder": "Descending",
                            "MaxResults": 100, **({"NextToken": token} if token else {})}
            with translated(TuningFailed, f"listing the tuning jobs named {prefix}*"):
                page = self.sagemaker.list_hyper_parameter_tuning_jobs(**page_request)
            candidates += [s["HyperParameterTuningJobName"] for s in page["HyperParameterTuningJobSummaries"]
                           if s["HyperParameterTuningJobName"].startswith(prefix)
                           and s["HyperParameterTuningJobStatus"] in ("Completed", "Stopped")]
            token = page.get("NextToken")
            if not token:
                break
        ours = request["TrainingJobDefinition"]
        objective = request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
        parents = []
        for name in candidates[:PARENT_CANDIDATES]:
            with translated(TuningFailed, f"describing tuning job {name}"):
                job = self.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            theirs = job.get("TrainingJobDefinition") or {}
            same = (theirs.get("AlgorithmSpecification", {}).get("TrainingImage")
                    == ours["AlgorithmSpecification"]["TrainingImage"]
                    and _data(theirs) == _data(ours)
                    and theirs.get("StaticHyperParameters") == ours["StaticHyperParameters"]
                    and job["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective") == objective)
            if same:
                parents.append(name)
            if len(parents) == MAX_PARENTS:
                break
        return parents

    def _wait(self, spec: TuningSpec, jobs: int, log) -> dict:
        budget = spec.max_seconds or spec.max_runtime_seconds * math.ceil(jobs / spec.max_parallel)
        timeout = self.timeout_seconds or budget + 1800

        def describe() -> dict:
            with translated(TuningFailed, f"describing tuning job {spec.job_name}"):
                return self.sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=spec.job_name)

        def counters(job: dict) -> dict:
            return job.get("TrainingJobStatusCounters") or {}

        def report(job: dict) -> str:
            best = (job.get("BestTrainingJob") or {}).get("FinalHyperParameterTuningJobObjectiveMetric") or {}
            return (f"{spec.job_name}: {job['HyperParameterTuningJobStatus']}; training jobs "
                    + ", ".join(f"{v} {k}" for k, v in counters(job).items() if v)
                    + (f"; best {best['MetricName']} {best['Value']:.5g}" if "Value" in best else ""))

        return wait_until_ended(
            describe, name=spec.job_name, status=lambda job: job["HyperParameterTuningJobStatus"],
            progress=lambda job: (job["HyperParameterTuningJobStatus"], tuple(sorted(counters(job).items()))),
            report=report, timeout=timeout, poll_seconds=self.poll_seconds, log=log,
            stop=lambda: self.sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=spec.job_name),
            timed_out=lambda job: TuningFailed(
                f"tuning job {spec.job_name} was still {job['HyperParameterTuningJobStatus']} after {timeout:.0f}s; "
                f"it was asked to stop so it costs nothing more. Fix: lower tuning.budget in model.yml or raise "
                f"training.max_runtime_seconds."))

    def _trials(self, job_name: str) -> list[dict]:
        summaries, token = [], None
        while True:
            request = {"HyperParameterTuningJobName": job_name, "MaxResults": 100,
                       **({"NextToken": token} if token else {})}
            with translated(TuningFailed, f"listing the training jobs of tuning job {job_name}"):
                page = self.sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(**request)
            summaries += page["TrainingJobSummaries"]
            token = page.get("NextToken")
            if not token:
                return [_summary(s) for s in summaries]

    def _result(self, spec: TuningSpec, job_name: str, earlier: list, new: list, parents: list[str],
                started: float, arn: str) -> TuningResult:
        from modelops.training.tuning import parse_value

        ordered = sorted([*earlier, *new], key=lambda s: (s["created"] is None, s["created"] or 0, s["job"]))
        kinds = {p.name: p for p in spec.parameters}
        trials = tuple(TuningTrial(number=i, state=s["state"], value=s["value"],
                                   hyperparameters={k: parse_value(kinds[k], v) if k in kinds else v
                                                    for k, v in s["hyperparameters"].items()},
                                   duration_seconds=s["seconds"], job_name=s["job"])
                       for i, s in enumerate(ordered))
        result = TuningResult(job_name=job_name, objective=spec.objective, maximize=spec.maximize, trials=trials,
                              duration_seconds=round(time.monotonic() - started, 3),
                              resumed_trials=len(earlier), storage=arn, parents=tuple(parents))
        if result.best is None:
            reasons = sorted({s["reason"] for s in ordered if s["reason"]})
            raise TuningFailed(f"tuning job {job_name}: no training job completed ({len(trials)} finished"
                               f"{'; ' + '; '.join(reasons[:3]) if reasons else ''}). Fix: check tuning.parameters "
                               f"in model.yml and the training jobs' CloudWatch logs.")
        return result


def _summary(summary: dict) -> dict:
    status = summary.get("TrainingJobStatus")
    metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
    start, end = summary.get("TrainingStartTime"), summary.get("TrainingEndTime")
    return {"job": summary["TrainingJobName"], "created": summary.get("CreationTime"),
            "state": {"Completed": COMPLETE, "Stopped": PRUNED}.get(status, FAILED),
            "value": float(metric["Value"]) if "Value" in metric else None,
            "hyperparameters": dict(summary.get("TunedHyperParameters") or {}),
            "seconds": round((end - start).total_seconds(), 1) if start and end else None,
            "reason": summary.get("FailureReason")}


def _data(definition: dict) -> list:
    return sorted((c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"])
                  for c in definition.get("InputDataConfig") or [])


def parameter_ranges(spec: TuningSpec) -> dict:
    """The search space as SageMaker's ParameterRanges (values as strings, log scale as ``Logarithmic``)."""
    ranges: dict[str, list] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                               "CategoricalParameterRanges": []}
    for p in spec.parameters:
        if p.kind == "categorical":
            ranges["CategoricalParameterRanges"].append({"Name": p.name, "Values": [str(v) for v in p.values]})
            continue
        bounds = (str(int(p.low)), str(int(p.high))) if p.kind == "int" else (repr(float(p.low)), repr(float(p.high)))
        key = "IntegerParameterRanges" if p.kind == "int" else "ContinuousParameterRanges"
        ranges[key].append({"Name": p.name, "MinValue": bounds[0], "MaxValue": bounds[1],
                            "ScalingType": "Logarithmic" if p.log else "Linear"})
    return {key: value for key, value in ranges.items() if value}


def tuning_job_request(spec: TuningSpec, image: str, role_arn: str, *, parents: list[str] = (),
                       max_jobs: int | None = None) -> dict:
    """The CreateHyperParameterTuningJob request: Bayesian search of the built-in XGBoost container's objective.

    Training jobs write under ``<spec.output_uri>/<training job name>/output/model.tar.gz``.
    """
    limits = {"MaxNumberOfTrainingJobs": int(max_jobs or spec.max_trials),
              "MaxParallelTrainingJobs": min(spec.max_parallel, int(max_jobs or spec.max_trials))}
    if spec.max_seconds:
        limits["MaxRuntimeInSeconds"] = max(MIN_RUNTIME_SECONDS, int(spec.max_seconds))
    request = {
        "HyperParameterTuningJobName": spec.job_name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": spec.direction, "MetricName": spec.objective},
            "ResourceLimits": limits,
            "ParameterRanges": parameter_ranges(spec),
            "TrainingJobEarlyStoppingType": "Auto",
            "RandomSeed": int(spec.seed),
        },
        "TrainingJobDefinition": {
            # SageMaker takes hyperparameters as strings; the container parses them.
            "StaticHyperParameters": {k: str(v) for k, v in spec.static_hyperparameters.items()},
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": role_arn,
            "InputDataConfig": channels(spec.train_uri, spec.validation_uri),
            "OutputDataConfig": {"S3OutputPath": spec.output_uri.rstrip("/")},
            "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                               "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_runtime_seconds},
        },
        "Tags": [{"Key": "modelops:model", "Value": spec.model}],
    }
    if parents:
        request["WarmStartConfig"] = {
            "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name} for name in parents],
            "WarmStartType": "IdenticalDataAndAlgorithm"}
    return request
