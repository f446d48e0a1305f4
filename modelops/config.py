"""Model configuration: load and validate a model folder's model.yml into frozen dataclasses."""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from modelops import container
from modelops.errors import ConfigError
from modelops.metrics import DEFAULT_TUNING_OBJECTIVE, PRIMARY_METRIC, PROBLEM_METRICS, TUNING_OBJECTIVES
from modelops.settings import MODEL_CONFIG_FILE

if TYPE_CHECKING:
    import pandas as pd

CONFIG_FILE = MODEL_CONFIG_FILE
#: The model folder's optional feature code: ``prepare(frame) -> frame`` on the raw table (modelops.data.features).
FEATURES_FILE = "features.py"

#: The problem types a model can have: those the metric registry names (regression, binary, multiclass).
PROBLEM_TYPES = tuple(PROBLEM_METRICS)

#: Test-split metrics each problem type reports; quality thresholds may name only these (see modelops.metrics).
METRICS = {problem: PROBLEM_METRICS[problem] for problem in PROBLEM_TYPES}

#: Hyperparameters the SageMaker built-in XGBoost algorithm accepts (its documented list).
SAGEMAKER_XGBOOST_HYPERPARAMETERS = frozenset(
    """num_round num_class alpha base_score booster colsample_bylevel colsample_bynode colsample_bytree
    csv_weights deterministic_histogram early_stopping_rounds eta eval_metric gamma grow_policy
    interaction_constraints lambda lambda_bias max_bin max_cat_to_onehot max_delta_step max_depth max_leaves
    min_child_weight monotone_constraints multi_strategy normalize_type nthread objective one_drop process_type
    rate_drop refresh_leaf sample_type sampling_method scale_pos_weight seed single_precision_histogram
    sketch_eps skip_drop subsample tree_method tweedie_variance_power updater verbosity""".split()
)

OBJECTIVES = {
    "regression": ("reg:squarederror", "reg:squaredlogerror", "reg:absoluteerror", "reg:pseudohubererror",
                   "reg:tweedie", "reg:gamma", "count:poisson"),
    "binary": ("binary:logistic", "binary:logitraw", "binary:hinge"),
    # Probabilities per class: what the metrics (log loss) and the endpoint check need; multi:softmax answers
    # labels only.
    "multiclass": ("multi:softprob",),
}

#: The fewest classes of a multiclass model (two classes are a binary model: positive_label, AUC, threshold).
MIN_CLASSES = 3

# SageMaker resource names: alphanumerics and hyphens, starting and ending alphanumeric. We keep the model
# name to 40 characters so that timestamped names built from it ("<name>-<yyyymmdd-hhmmss>-<n>") stay within
# SageMaker's 63-character limit.
MODEL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}$")
CONTAINER_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)-(\d+)$")

#: The environments every model is deployed to, in the order a version goes through them: staging first (where
#: the promotion gate tests the live endpoint), then production. Their endpoints: ``<name>-staging`` and ``<name>``.
STAGING = "staging"
PRODUCTION = "production"
ENVIRONMENT_NAMES = (STAGING, PRODUCTION)
STAGING_SUFFIX = f"-{STAGING}"
#: How a production update shifts traffic (see Rollout).
ROLLOUT_STRATEGIES = ("all_at_once", "canary", "linear")
#: The largest canary SageMaker's deployment guardrails take, in percent of the new fleet's capacity.
MAX_CANARY_PERCENT = 50

_NUMBER = {"type": "number"}
_THRESHOLD = {
    "type": "object",
    "properties": {"min": _NUMBER, "max": _NUMBER},
    "additionalProperties": False,
    "minProperties": 1,
}

_ENVIRONMENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "instance_type": {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$"},
        "instance_count": {"type": "integer", "minimum": 1},
        # What the promotion gate holds staging to before production gets the version (production only).
        "slo": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "p50_ms": {"type": "number", "exclusiveMinimum": 0},
                "p99_ms": {"type": "number", "exclusiveMinimum": 0},
                "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        # The guarded rollout of a production update (production only; its alarms are the slo's figures).
        "rollout": {
            "type": "object",
            "additionalProperties": False,
            "required": ["strategy"],
            "properties": {
                "strategy": {"enum": list(ROLLOUT_STRATEGIES)},
                "traffic_percent": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100},
                "interval_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "bake_seconds": {"type": "integer", "minimum": 0, "maximum": 3600},
            },
        },
        # Production's instance bounds and scaling target (production only; see Autoscaling).
        "autoscaling": {
            "type": "object",
            "additionalProperties": False,
            "required": ["min_instances", "max_instances"],
            "properties": {
                "min_instances": {"type": "integer", "minimum": 1},
                "max_instances": {"type": "integer", "minimum": 1},
                "target_invocations_per_instance": {"type": "integer", "minimum": 1},
            },
        },
    },
}

_RANGE = {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2}
#: One searched hyperparameter: ``{int: [2, 10]}``, ``{float: [0.01, 0.3], log: true}`` or ``{categorical: [a, b]}``.
_SEARCH_PARAMETER = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {"int": _RANGE, "float": _RANGE, "log": {"type": "boolean"},
                   "categorical": {"type": "array", "minItems": 1,
                                   "items": {"type": ["string", "number", "boolean"]}}},
}
#: MLflow's MetricThreshold comparison fields (mlflow/models/evaluation/validation.py), same names and meaning.
_CHANGE_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"min_absolute_change": {"type": "number", "exclusiveMinimum": 0},
                   "min_relative_change": {"type": "number", "minimum": 0, "maximum": 1}},
}

SCHEMA: dict[str, Any] = {
    "$defs": {"environment": _ENVIRONMENT},
    "type": "object",
    "required": ["name", "problem_type", "data", "split", "training", "quality"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "problem_type": {"enum": list(PROBLEM_TYPES)},
        "data": {
            "type": "object",
            "required": ["source", "target"],
            "additionalProperties": False,
            "properties": {
                "source": {"type": "string", "minLength": 1},
                "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
                "header": {"type": "boolean"},
                "columns": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "target": {"type": "string"},
                "positive_label": {"type": ["string", "number", "boolean"]},
                "classes": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                "derived": {"type": "array", "items": {"type": "string"}},
                "drop": {"type": "array", "items": {"type": "string"}},
                "categorical": {"type": "array", "items": {"type": "string"}},
            },
        },
        "split": {
            "type": "object",
            "required": ["train", "validation", "test", "seed"],
            "additionalProperties": False,
            "properties": {
                "train": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "validation": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "test": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "seed": {"type": "integer"},
            },
        },
        "training": {
            "type": "object",
            "required": ["container_version", "hyperparameters"],
            "additionalProperties": False,
            "properties": {
                "container_version": {"type": "string"},
                "instance_type": {"type": "string", "pattern": r"^ml\.[a-z0-9]+\.[a-z0-9]+$"},
                "instance_count": {"type": "integer", "minimum": 1},
                "max_runtime_seconds": {"type": "integer", "minimum": 60},
                "hyperparameters": {
                    "type": "object",
                    "required": ["num_round", "objective"],
                    "additionalProperties": {"type": ["number", "string", "boolean"]},
                    "properties": {
                        "num_round": {"type": "integer", "minimum": 1},
                        "objective": {"type": "string"},
                        "max_depth": {"type": "integer", "minimum": 0},
                        "early_stopping_rounds": {"type": "integer", "minimum": 1},
                        "eta": {"type": "number", "minimum": 0, "maximum": 1},
                        "subsample": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "gamma": {"type": "number", "minimum": 0},
                        "min_child_weight": {"type": "number", "minimum": 0},
                        "eval_metric": {"type": "string"},
                    },
                },
            },
        },
        "environments": {
            "type": "object",
            "additionalProperties": False,
            # Both take every key, so that a key set on the wrong one gets a sentence saying where it belongs
            # (``_environment_problems``) rather than "unknown key".
            "properties": {name: {"$ref": "#/$defs/environment"} for name in ENVIRONMENT_NAMES},
        },
        "evaluation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
        },
        "quality": {"type": "object", "additionalProperties": _THRESHOLD},
        "monitoring": {  # data capture and the monitor's checks (modelops/monitoring/monitor.py, docs/monitoring.md)
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "data_capture": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "enabled": {"type": "boolean"},
                        "sampling_percentage": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                        "max_disk_mb": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
                "drift": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "numeric_test": {"type": "string"},
                        "numeric_threshold": {"type": "number", "exclusiveMinimum": 0},
                        "categorical_test": {"type": "string"},
                        "categorical_threshold": {"type": "number", "exclusiveMinimum": 0},
                        "comparison_method": {"enum": ["robust", "simple"]},
                        "min_rows": {"type": "integer", "minimum": 1},
                        "features": {"type": "object", "additionalProperties": {
                            "type": "object", "additionalProperties": False, "minProperties": 1,
                            "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0},
                                           "ignore": {"type": "boolean"}}}},
                    },
                },
                "completeness_tolerance": {"type": "number", "minimum": 0, "maximum": 1},
                "datatype_check_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                "domain_content_threshold": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        "serving": {  # the SageMaker XGBoost container's environment switches (modelops/container.py)
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "inference_output": {"type": "array", "items": {"enum": list(container.ALL_OUTPUT_KEYS)},
                                     "minItems": 1, "uniqueItems": True},
                "default_accept": {"enum": list(container.ACCEPTS)},
            },
        },
        "tuning": {
            "type": "object",
            "required": ["parameters"],
            "additionalProperties": False,
            "properties": {
                "objective": {"type": "string"},
                "parameters": {"type": "object", "minProperties": 1, "additionalProperties": _SEARCH_PARAMETER},
                "budget": {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {"trials": {"type": "integer", "minimum": 1},
                                   "seconds": {"type": "integer", "minimum": 1},
                                   "parallel": {"type": "integer", "minimum": 1}},
                },
                "seed": {"type": "integer", "minimum": 0},
                "max_rounds": {"type": "integer", "minimum": 2},
                "early_stopping_rounds": {"type": "integer", "minimum": 1},
            },
        },
        "review": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "resamples": {"type": "integer", "minimum": 1000, "maximum": 100000},
                "seed": {"type": "integer", "minimum": 0},
                **_CHANGE_RULE["properties"],
                "metrics": {"type": "object", "minProperties": 1,
                            "additionalProperties": {"anyOf": [_CHANGE_RULE, {"type": "null"}]}},
            },
        },
    },
}


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data comes from and how its columns become features."""

    source: str
    target: str
    sha256: str | None = None
    header: bool = True
    columns: tuple[str, ...] = ()
    positive_label: Any = None
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()  # multiclass: the target's values, label-encoded 0, 1, ... in this order
    derived: tuple[str, ...] = ()  # columns the model folder's features.py adds to the raw table


@dataclass(frozen=True)
class SplitConfig:
    """Train/validation/test ratios and the shuffle seed."""

    train: float
    validation: float
    test: float
    seed: int


@dataclass(frozen=True)
class TrainingConfig:
    """XGBoost container version, hyperparameters (SageMaker names) and training compute."""

    container_version: str
    hyperparameters: dict[str, Any]
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    max_runtime_seconds: int = 3600


@dataclass(frozen=True)
class SLO:
    """What the promotion gate requires of the staging endpoint before production gets its version.

    Latency is what a client measures per single-row request (SageMaker Runtime's InvokeEndpoint, end to end);
    the error rate is the share of the gate's requests that failed after the client's own retries.
    """

    p50_ms: float | None = None  # None: not gated
    p99_ms: float | None = None
    error_rate: float = 0.0

    def describe(self) -> str:
        parts = [f"{name} <= {value:g}" for name, value in (("p50_ms", self.p50_ms), ("p99_ms", self.p99_ms))
                 if value is not None]
        return ", ".join([*parts, f"error_rate <= {self.error_rate:g}"])


@dataclass(frozen=True)
class Rollout:
    """How a production update shifts traffic (model.yml ``environments.production.rollout``; ``Endpoints.deploy``).

    ``all_at_once`` switches when the new version is in service; ``canary`` sends ``traffic_percent`` of the
    requests to it for ``interval_seconds``, then the rest; ``linear`` shifts ``traffic_percent`` more every
    ``interval_seconds``. Either way the new version then bakes for ``bake_seconds`` with the alarms armed, and
    a tripped alarm rolls the update back. The alarms hold the new version to production's SLO (one home for the
    figures the gate also holds staging to): locally the router's figures for the new version, on SageMaker
    CloudWatch alarms on its 5xx errors and model latency (deployment guardrails).
    """

    strategy: str = "all_at_once"
    traffic_percent: float | None = None
    interval_seconds: int = 0
    bake_seconds: int = 0
    #: What the alarms hold the new version to: production's ``slo`` (set from there, not a key of ``rollout``).
    slo: SLO | None = None

    @property
    def alarm_p99_ms(self) -> float | None:
        """The latency alarm's threshold: production's slo.p99_ms (None: no latency alarm)."""
        return self.slo.p99_ms if self.slo else None

    @property
    def alarm_error_rate(self) -> float:
        """The error alarm's threshold: production's slo.error_rate."""
        return self.slo.error_rate if self.slo else 0.0

    def guarded(self) -> bool:
        """Whether the new version is served beside the old one with alarms armed (else: switched at once)."""
        return self.strategy != "all_at_once" or self.bake_seconds > 0


@dataclass(frozen=True)
class Autoscaling:
    """Production's instance bounds and the load per instance the count is scaled to hold.

    On SageMaker: Application Auto Scaling target tracking on ``SageMakerVariantInvocationsPerInstance`` (requests
    per instance per minute); the local backend runs one process and says so.
    """

    min_instances: int
    max_instances: int
    target_invocations_per_instance: int | None = None


@dataclass(frozen=True)
class DeployEnvironment:
    """One environment a model is deployed to (model.yml ``environments.<name>``) and its endpoint's name.

    Not to be confused with a container's environment (``ServingConfig.environment``, the variables the
    endpoint's container runs with).
    """

    name: str  # staging | production
    endpoint: str  # <model>-staging | <model>
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    slo: SLO | None = None  # production only
    rollout: Rollout | None = None  # production only
    autoscaling: Autoscaling | None = None  # production only


def endpoint_name(model: str, env_name: str) -> str:
    """The endpoint of ``model`` in an environment: ``<model>`` in production, ``<model>-staging`` in staging."""
    return model if env_name == PRODUCTION else f"{model}-{env_name}"


def endpoint_owner(endpoint: str) -> tuple[str, str]:
    """The model and environment an endpoint name stands for (the inverse of ``endpoint_name``).

    Unambiguous because no model name ends with ``-staging`` (model.yml refuses one).
    """
    if endpoint.endswith(STAGING_SUFFIX):
        return endpoint[: -len(STAGING_SUFFIX)], STAGING
    return endpoint, PRODUCTION


@dataclass(frozen=True)
class ServingConfig:
    """What the endpoint's container answers: SAGEMAKER_INFERENCE_OUTPUT keys and the default Accept."""

    inference_output: tuple[str, ...] = ()  # e.g. ("predicted_label", "probability"); empty: scores only
    default_accept: str | None = None  # the answer format of requests without Accept (the container's: text/csv)

    @property
    def environment(self) -> dict[str, str]:
        """The container environment these settings mean (CreateModel's Environment, the local server's)."""
        return container.environment(self.inference_output, self.default_accept)


@dataclass(frozen=True)
class DataCaptureConfig:
    """Which requests the endpoint records for the monitor (SageMaker's DataCaptureConfig; off unless enabled)."""

    enabled: bool = False
    sampling_percentage: float = 100.0  # share of requests captured
    max_disk_mb: float = 1024.0  # local endpoints: the oldest capture files go beyond this (S3 has no bound)


@dataclass(frozen=True)
class DriftConfig:
    """How the monitor compares live features with the training baseline (tests in modelops.monitoring.drift.TESTS)."""

    numeric_test: str = "ks"
    numeric_threshold: float | None = None  # None: the test's default
    categorical_test: str = "jensen_shannon"
    categorical_threshold: float | None = None
    comparison_method: str = "robust"  # robust: no drift is called on fewer rows than the test can tell apart
    min_rows: int = 30  # fewer live rows than this: distributions are not compared (schema checks still run)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {threshold: x} or {ignore: true}


@dataclass(frozen=True)
class MonitoringConfig:
    """model.yml ``monitoring``: data capture, the drift tests and the constraint thresholds."""

    data_capture: DataCaptureConfig = field(default_factory=DataCaptureConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    completeness_tolerance: float = 0.02  # live completeness may fall this far below training's
    datatype_check_threshold: float = 0.1  # share of live values of another type than training's allowed
    domain_content_threshold: float = 0.1  # share of live rows outside the training categories allowed


@dataclass(frozen=True)
class Threshold:
    """A quality gate on one test metric: the value must lie within [min, max]."""

    metric: str
    min: float | None = None
    max: float | None = None

    def passes(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class SearchParameter:
    """One hyperparameter a search varies: an int or float range (log-scaled or not), or categorical values."""

    name: str
    kind: str  # int | float | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple = ()

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"one of {list(self.values)}"
        return f"{self.kind} in [{self.low:g}, {self.high:g}]{' (log scale)' if self.log else ''}"


#: Hyperparameters a search may not vary: the search sets them itself (num_round through early stopping on the
#: validation split, eval_metric to the objective), or they are not the model's to choose.
UNSEARCHABLE = frozenset({"num_round", "early_stopping_rounds", "eval_metric", "objective", "num_class", "nthread",
                          "seed", "verbosity", "csv_weights"})


@dataclass(frozen=True)
class TuningConfig:
    """The hyperparameter search (``tuning:`` in model.yml): the space, the objective and the budget.

    Every trial trains on the train split with up to ``max_rounds`` rounds, stops early when the objective on the
    validation split has not improved for ``early_stopping_rounds`` rounds, and is scored on the validation split.
    The test split is never read.
    """

    parameters: tuple[SearchParameter, ...]
    objective: str  # the validation metric, as the SageMaker container names it: "validation:rmse"
    trials: int = 50
    seconds: int | None = None  # wall-clock budget besides the trial budget (None: trials only)
    parallel: int = 1  # SageMaker: training jobs at once (local trials run one at a time, reproducibly)
    seed: int = 0
    max_rounds: int = 1000
    early_stopping_rounds: int = 30

    @property
    def metric(self) -> str:
        """The XGBoost eval metric the objective names (``rmse`` for ``validation:rmse``)."""
        return self.objective.split(":", 1)[1]

    @property
    def maximize(self) -> bool:
        return next(higher for table in TUNING_OBJECTIVES.values() for name, higher in table.items()
                    if name == self.metric)

    @property
    def direction(self) -> str:
        """``Maximize`` or ``Minimize``, as SageMaker's tuning objective says it."""
        return "Maximize" if self.maximize else "Minimize"


@dataclass(frozen=True)
class ChangeRule:
    """How much better than the champion a challenger must be on one metric (MLflow's MetricThreshold fields).

    ``min_absolute_change``: the improvement (positive = better) must be at least this. ``min_relative_change``:
    at least this share of the champion's value (a champion at 0 needs any improvement above 1e-10, as in MLflow).
    """

    metric: str
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def describe(self) -> str:
        parts = [f"min_absolute_change {self.min_absolute_change:g}" if self.min_absolute_change else "",
                 f"min_relative_change {self.min_relative_change:g}" if self.min_relative_change else ""]
        return ", ".join(p for p in parts if p) or "any improvement"


@dataclass(frozen=True)
class ReviewConfig:
    """The review's noise-aware verdict (``review:`` in model.yml): the bootstrap and the metrics it decides on."""

    rules: tuple[ChangeRule, ...] = ()  # empty: the primary metric, with the global minimum changes
    resamples: int = 2000
    seed: int = 0
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def decided_on(self, problem_type: str) -> tuple[ChangeRule, ...]:
        """The metrics a challenger must beat the champion on, each with its minimum change."""
        if self.rules:
            return self.rules
        return (ChangeRule(PRIMARY_METRIC[problem_type], self.min_absolute_change, self.min_relative_change),)


@dataclass(frozen=True)
class ModelConfig:
    """A model folder's declarative configuration (model.yml)."""

    name: str
    problem_type: str
    data: DataConfig
    split: SplitConfig
    training: TrainingConfig
    quality: tuple[Threshold, ...]
    environments: dict[str, DeployEnvironment] = field(default_factory=dict)  # staging, production
    serving: ServingConfig = field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    decision_threshold: float = 0.5
    description: str = ""
    folder: Path | None = None
    tuning: TuningConfig | None = None  # None: model.yml has no tuning: section
    review: ReviewConfig = field(default_factory=ReviewConfig)

    def summary(self) -> pd.DataFrame:
        """The settings a reviewer checks, one per row."""
        import pandas as pd

        rows = {
            "name": self.name,
            "problem type": self.problem_type,
            "source": self.data.source,
            "expected sha256": self.data.sha256 or "(not checked)",
            "target": self.data.target,
            **({"classes": ", ".join(map(str, self.data.classes))} if self.data.classes else {}),
            **({"derived by features.py": ", ".join(self.data.derived)} if self.data.derived else {}),
            "split (train/validation/test, seed)": f"{self.split.train}/{self.split.validation}/{self.split.test}, "
                                                   f"{self.split.seed}",
            "XGBoost container": self.training.container_version,
            "hyperparameters": ", ".join(f"{k}={v}" for k, v in self.hyperparameters.items()),
            "quality gates": ", ".join(f"{t.metric} {t.describe()}" for t in self.quality),
            **{f"{env} endpoint": _describe_environment(self.deploy_environment(env)) for env in ENVIRONMENT_NAMES},
            "promotion gate (production SLO)": self.slo.describe(),
            "endpoint container environment": ", ".join(f"{k}={v}" for k, v in self.serving.environment.items())
                                              or "(defaults: scores, text/csv)",
        }
        return pd.DataFrame({"value": rows}).rename_axis("setting")

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.problem_type]

    def deploy_environment(self, env_name: str) -> DeployEnvironment:
        """The settings and endpoint of one environment (defaults when model.yml does not set them).

        Raises:
            ConfigError: ``env_name`` is neither staging nor production.
        """
        if env_name not in ENVIRONMENT_NAMES:
            raise ConfigError(f"unknown environment {env_name!r}. Fix: use one of {list(ENVIRONMENT_NAMES)}.")
        return self.environments.get(env_name) or DeployEnvironment(env_name, endpoint_name(self.name, env_name))

    @property
    def slo(self) -> SLO:
        """What the promotion gate requires: production's SLO (only errors are gated when model.yml sets none)."""
        return self.deploy_environment(PRODUCTION).slo or SLO()

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The hyperparameters training uses: model.yml's, with a multiclass model's ``num_class`` from data.classes."""
        values = dict(self.training.hyperparameters)
        if self.problem_type == "multiclass":
            values["num_class"] = len(self.data.classes)
        return values

    @property
    def xgboost_version(self) -> str:
        """The xgboost major.minor that the configured SageMaker container runs (e.g. '3.2')."""
        major, minor, _ = CONTAINER_VERSION_PATTERN.match(self.training.container_version).groups()
        return f"{major}.{minor}"


def load_model_config(path: str | Path = ".", *, check_xgboost: bool = True) -> ModelConfig:
    """Load and validate a model config.

    Args:
        path: a model folder (its ``model.yml`` is read) or the config file itself.
        check_xgboost: refuse a container version whose xgboost major.minor differs from the installed one.

    Returns:
        The validated configuration, with ``folder`` set to the model folder.

    Raises:
        ConfigError: the file is missing, not YAML, or a key is missing, mistyped or inconsistent.
    """
    path = Path(path)
    file = path / CONFIG_FILE if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(
            f"{file}: no model config found. Fix: create {CONFIG_FILE} in the model folder "
            f"(`python -m ci new-model` writes one) or pass the right folder."
        )
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}). Fix: correct the syntax at the line shown.") from exc
    config = parse_model_config(raw, source=str(file))
    config = _replace_folder(config, file.parent.resolve())
    if config.data.derived and not (config.folder / FEATURES_FILE).is_file():
        raise ConfigError(
            f"{file}: key 'data.derived' lists {list(config.data.derived)}, columns a {FEATURES_FILE} adds, but "
            f"{config.folder / FEATURES_FILE} does not exist. Fix: write {FEATURES_FILE} with prepare(frame) adding "
            f"them, or remove data.derived."
        )
    if check_xgboost:
        check_container_version(config.training.container_version, source=str(file))
    return config


def parse_model_config(raw: Any, *, source: str = CONFIG_FILE) -> ModelConfig:
    """Validate an already-parsed mapping (see load_model_config) and build the dataclasses."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys (name, problem_type, data, ...), got {_kind(raw)}.")
    if "endpoint" in raw:
        raise ConfigError(f"{source}: key 'endpoint' is replaced by 'environments': each model has a staging and a "
                          f"production endpoint. Fix: move its instance_type and instance_count under "
                          f"environments.staging and environments.production (see abalone_model/model.yml).")
    _check_schema(raw, source)
    _check_semantics(raw, source)
    data = raw["data"]
    training = raw["training"]
    evaluation = raw.get("evaluation") or {}
    return ModelConfig(
        name=raw["name"],
        description=raw.get("description", ""),
        problem_type=raw["problem_type"],
        data=DataConfig(
            source=data["source"],
            target=data["target"],
            sha256=data.get("sha256"),
            header=data.get("header", True),
            columns=tuple(data.get("columns", ())),
            positive_label=data.get("positive_label"),
            drop=tuple(data.get("drop", ())),
            categorical=tuple(data.get("categorical", ())),
            classes=tuple(data.get("classes", ())),
            derived=tuple(data.get("derived", ())),
        ),
        split=SplitConfig(**raw["split"]),
        training=TrainingConfig(
            container_version=training["container_version"],
            hyperparameters=dict(training["hyperparameters"]),
            instance_type=training.get("instance_type", "ml.m5.large"),
            instance_count=training.get("instance_count", 1),
            max_runtime_seconds=training.get("max_runtime_seconds", 3600),
        ),
        environments={env: _environment(raw["name"], env, settings)
                      for env, settings in (raw.get("environments") or {}).items()},
        serving=ServingConfig(tuple((raw.get("serving") or {}).get("inference_output", ())),
                              (raw.get("serving") or {}).get("default_accept")),
        monitoring=_monitoring(raw.get("monitoring") or {}),
        decision_threshold=evaluation.get("threshold", 0.5),
        quality=tuple(Threshold(metric, **bounds) for metric, bounds in raw["quality"].items()),
        tuning=_tuning(raw),
        review=_review(raw),
    )


def _environment(model: str, env_name: str, raw: dict) -> DeployEnvironment:
    slo = SLO(**raw["slo"]) if raw.get("slo") else None
    return DeployEnvironment(
        name=env_name, endpoint=endpoint_name(model, env_name),
        instance_type=raw.get("instance_type", "ml.m5.large"), instance_count=raw.get("instance_count", 1),
        slo=slo, rollout=Rollout(**raw["rollout"], slo=slo) if raw.get("rollout") else None,
        autoscaling=Autoscaling(**raw["autoscaling"]) if raw.get("autoscaling") else None)


def _describe_environment(env: DeployEnvironment) -> str:
    text = f"{env.endpoint}: {env.instance_count} x {env.instance_type}"
    if env.autoscaling:
        text += f", autoscaling {env.autoscaling.min_instances}-{env.autoscaling.max_instances}"
    if env.rollout:
        text += f", rollout {env.rollout.strategy}"
    return text


def _tuning(raw: dict) -> TuningConfig | None:
    tuning = raw.get("tuning")
    if tuning is None:
        return None
    parameters = []
    for name, spec in tuning["parameters"].items():
        kind = next(k for k in ("int", "float", "categorical") if k in spec)
        if kind == "categorical":
            parameters.append(SearchParameter(name, kind, values=tuple(spec[kind])))
        else:
            low, high = spec[kind]
            cast = int if kind == "int" else float
            parameters.append(SearchParameter(name, kind, cast(low), cast(high), bool(spec.get("log", False))))
    budget = tuning.get("budget") or {}
    hyper = raw["training"]["hyperparameters"]
    return TuningConfig(
        parameters=tuple(parameters), objective=_objective(raw), trials=budget.get("trials", 50),
        seconds=budget.get("seconds"), parallel=budget.get("parallel", 1),
        seed=tuning.get("seed", raw["split"]["seed"]), max_rounds=tuning.get("max_rounds", 1000),
        early_stopping_rounds=tuning.get("early_stopping_rounds", hyper.get("early_stopping_rounds", 30)))


def _objective(raw: dict) -> str:
    configured = (raw.get("tuning") or {}).get("objective")
    if configured:
        return configured
    eval_metric = raw["training"]["hyperparameters"].get("eval_metric")
    choices = TUNING_OBJECTIVES[raw["problem_type"]]
    return f"validation:{eval_metric if eval_metric in choices else DEFAULT_TUNING_OBJECTIVE[raw['problem_type']]}"


def _review(raw: dict) -> ReviewConfig:
    review = raw.get("review") or {}
    absolute, relative = review.get("min_absolute_change"), review.get("min_relative_change")
    rules = tuple(ChangeRule(name, (spec or {}).get("min_absolute_change", absolute),
                             (spec or {}).get("min_relative_change", relative))
                  for name, spec in (review.get("metrics") or {}).items())
    return ReviewConfig(rules=rules, resamples=review.get("resamples", 2000),
                        seed=review.get("seed", raw["split"]["seed"]), min_absolute_change=absolute,
                        min_relative_change=relative)


def _monitoring(raw: dict) -> MonitoringConfig:
    drift = raw.get("drift") or {}
    return MonitoringConfig(
        data_capture=DataCaptureConfig(**(raw.get("data_capture") or {})),
        drift=DriftConfig(**{**drift, "features": dict(drift.get("features") or {})}),
        **{k: raw[k] for k in ("completeness_tolerance", "datatype_check_threshold", "domain_content_threshold")
           if k in raw})


def check_container_version(container_version: str, *, source: str = CONFIG_FILE) -> None:
    """Refuse a SageMaker XGBoost container whose xgboost major.minor differs from the installed xgboost.

    A model saved by a newer xgboost loads without complaint in an older one but predicts wrongly,
    so training locally with one version and serving in a container with another is never allowed.
    """
    version = installed_xgboost_version()
    installed = ".".join(version.split(".")[:2])
    major, minor, _ = CONTAINER_VERSION_PATTERN.match(container_version).groups()
    if f"{major}.{minor}" != installed:
        raise ConfigError(
            f"{source}: key 'training.container_version' is {container_version!r} (xgboost {major}.{minor}) "
            f"but xgboost {version} is installed. A model saved by one version predicts wrongly "
            f"in the other. Fix: set container_version to '{installed}-0' (or the container release for "
            f"{installed}), or install xgboost-cpu=={major}.{minor}.*."
        )


def installed_xgboost_version() -> str:
    """The installed xgboost's version, read as xgboost itself reads it (its VERSION file), without importing it.

    Importing xgboost takes ~0.8 s and ~130 MB (it pulls in scikit-learn when that is installed): reading a
    model.yml must not cost that in the CLI, or in the gather and review kernels, which never train.
    """
    import importlib.util
    import sys

    if "xgboost" in sys.modules:
        return sys.modules["xgboost"].__version__
    spec = importlib.util.find_spec("xgboost")
    if spec is not None and spec.origin:
        try:
            return (Path(spec.origin).parent / "VERSION").read_text(encoding="ascii").strip()
        except OSError:
            pass
    import xgboost

    return xgboost.__version__


def is_valid_model_name(name: str) -> bool:
    return bool(MODEL_NAME_PATTERN.match(name))


def _check_schema(raw: dict, source: str) -> None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(raw), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [_describe_schema_error(e) for e in errors]
        raise ConfigError(f"{source}: " + "; ".join(lines))


def _describe_schema_error(error) -> str:
    key = ".".join(str(p) for p in error.path) or "(top level)"
    schema_keys = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    if error.validator == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        name = missing.group(1) if missing else error.message
        full = f"{key}.{name}" if error.path else name
        return f"key '{full}' is missing. Fix: add it (see abalone_model/model.yml for an example)"
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        hints = []
        for name in extra:
            close = difflib.get_close_matches(name, schema_keys, n=1)
            full = f"{key}.{name}" if error.path else name
            hints.append(f"'{full}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return f"unknown key {', '.join(hints)}. Fix: remove it or correct the spelling; allowed: {schema_keys}"
    if error.validator == "type":
        expected = error.validator_value
        expected = expected if isinstance(expected, str) else " or ".join(expected)
        return f"key '{key}' must be {expected}, got {_kind(error.instance)} {error.instance!r}. Fix: change its value"
    if error.validator == "enum":
        return f"key '{key}' is {error.instance!r}, which is not one of {error.validator_value}. Fix: use one of those"
    if error.validator == "pattern" and key.endswith("sha256"):
        return f"key '{key}' is {error.instance!r}, not a 64-character lowercase hex sha256. Fix: paste the digest"
    if error.validator == "pattern":
        return f"key '{key}' is {error.instance!r}, which does not match {error.validator_value}. Fix: correct it"
    return f"key '{key}': {error.message}. Fix: correct the value"


def _check_semantics(raw: dict, source: str) -> None:
    problems: list[str] = []
    name = raw["name"]
    if not is_valid_model_name(name):
        problems.append(
            f"key 'name' is {name!r}, not a valid SageMaker name. Fix: use 1-40 letters, digits and hyphens, "
            f"starting and ending with a letter or digit (e.g. 'abalone-model')"
        )
    if is_valid_model_name(name) and name.endswith(STAGING_SUFFIX):
        problems.append(f"key 'name' is {name!r}, which ends with {STAGING_SUFFIX!r}: its production endpoint would "
                        f"take the name of model {name[:-len(STAGING_SUFFIX)]!r}'s staging endpoint. Fix: choose a "
                        f"name that does not end with {STAGING_SUFFIX!r}")
    problems += _environment_problems(raw.get("environments") or {})
    problem_type = raw["problem_type"]
    data = raw["data"]
    columns = data.get("columns") or []
    if not data.get("header", True) and not columns:
        problems.append("key 'data.columns' is missing: a file without a header needs its column names. "
                        "Fix: list the columns in file order")
    if columns:
        if len(set(columns)) != len(columns):
            problems.append("key 'data.columns' names a column twice. Fix: make every column name unique")
        for key in ("target",):
            if data[key] not in columns:
                problems.append(f"key 'data.{key}' is {data[key]!r}, which is not in data.columns {columns}. "
                                f"Fix: use one of the listed columns")
        derived = data.get("derived", [])
        for key in ("drop", "categorical"):
            for col in data.get(key, []):
                if col not in columns and col not in derived:
                    problems.append(f"key 'data.{key}' names {col!r}, which is not in data.columns or data.derived. "
                                    f"Fix: remove it or correct the spelling")
        for col in derived:
            if col in columns:
                problems.append(f"key 'data.derived' names {col!r}, which is already in data.columns. Fix: list "
                                f"only the columns features.py adds (a column it changes is not derived)")
    if data["target"] in data.get("drop", []):
        problems.append(f"key 'data.drop' drops the target {data['target']!r}. Fix: remove it from data.drop")
    derived = data.get("derived", [])
    if len(set(derived)) != len(derived):
        problems.append("key 'data.derived' names a column twice. Fix: list each derived column once")
    if data["target"] in derived:
        problems.append(f"key 'data.derived' names the target {data['target']!r}: features.py must not make the "
                        f"label (at inference there is none). Fix: remove it from data.derived")
    problems += _class_problems(problem_type, data, raw["training"]["hyperparameters"])
    if problem_type == "binary" and "positive_label" not in data:
        problems.append("key 'data.positive_label' is missing: a binary model needs the target value that "
                        "counts as 1. Fix: add e.g. positive_label: 'True.'")
    split = raw["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        problems.append(f"key 'split' ratios add up to {total:g}, not 1. Fix: make train + validation + test = 1")
    training = raw["training"]
    if not CONTAINER_VERSION_PATTERN.match(training["container_version"]):
        problems.append(f"key 'training.container_version' is {training['container_version']!r}, not a SageMaker "
                        f"XGBoost container version. Fix: use the form '3.2-0'")
    hyper = training["hyperparameters"]
    for key in hyper:
        if key not in SAGEMAKER_XGBOOST_HYPERPARAMETERS:
            close = difflib.get_close_matches(key, SAGEMAKER_XGBOOST_HYPERPARAMETERS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"key 'training.hyperparameters.{key}' is not a SageMaker XGBoost hyperparameter{hint}. "
                            f"Fix: remove it or correct the spelling")
    objective = hyper.get("objective")
    if objective not in OBJECTIVES[problem_type]:
        problems.append(f"key 'training.hyperparameters.objective' is {objective!r}, which does not fit problem_type "
                        f"{problem_type!r}. Fix: use one of {list(OBJECTIVES[problem_type])}")
    if "early_stopping_rounds" in hyper and hyper["early_stopping_rounds"] >= hyper["num_round"]:
        problems.append("key 'training.hyperparameters.early_stopping_rounds' is not below num_round, so it never "
                        "stops early. Fix: lower it or remove it")
    quality = raw["quality"]
    if not quality:
        problems.append("key 'quality' has no thresholds, so every model would pass review. "
                        f"Fix: gate at least one of {list(METRICS[problem_type])}")
    for metric, bounds in quality.items():
        if metric not in METRICS[problem_type]:
            problems.append(f"key 'quality.{metric}' is not a metric of a {problem_type} model. "
                            f"Fix: use one of {list(METRICS[problem_type])}")
        elif "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            problems.append(f"key 'quality.{metric}' has min {bounds['min']} above max {bounds['max']}, so it always "
                            f"fails. Fix: swap or correct them")
    problems += _serving_problems(raw.get("serving") or {}, objective)
    problems += _tuning_problems(raw) + _review_problems(raw)
    problems += _monitoring_problems((raw.get("monitoring") or {}).get("drift") or {})
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def _environment_problems(environments: dict) -> list[str]:
    """Keys set on the wrong environment, and bounds that contradict each other."""
    problems = []
    staging = environments.get(STAGING) or {}
    if "slo" in staging:
        problems.append("key 'environments.staging.slo': the promotion gate holds staging to production's SLOs, so "
                        "they are set once. Fix: move it to environments.production.slo")
    for key in ("rollout", "autoscaling"):
        if key in staging:
            problems.append(f"key 'environments.staging.{key}': staging is replaced at once on a fixed instance "
                            f"count; {key} applies to production. Fix: move it to environments.production.{key}")
    production = environments.get(PRODUCTION) or {}
    slo = production.get("slo") or {}
    if "p50_ms" in slo and "p99_ms" in slo and slo["p50_ms"] > slo["p99_ms"]:
        problems.append(f"key 'environments.production.slo' has p50_ms {slo['p50_ms']:g} above p99_ms "
                        f"{slo['p99_ms']:g}, which no endpoint can meet. Fix: swap or correct them")
    scaling = production.get("autoscaling") or {}
    if scaling:
        low, high = scaling["min_instances"], scaling["max_instances"]
        count = production.get("instance_count", 1)
        if low > high:
            problems.append(f"key 'environments.production.autoscaling' has min_instances {low} above max_instances "
                            f"{high}. Fix: swap or correct them")
        elif not low <= count <= high:
            problems.append(f"key 'environments.production.instance_count' is {count}, outside autoscaling's "
                            f"{low}-{high}: the endpoint would start where it may not stay. Fix: set it within them")
    if scaling and "target_invocations_per_instance" not in scaling:
        problems.append("key 'environments.production.autoscaling.target_invocations_per_instance' is missing: "
                        "without a target nothing moves the instance count between the bounds. Fix: add e.g. "
                        "target_invocations_per_instance: 1000 (requests per instance per minute)")
    rollout = production.get("rollout") or {}
    percent = rollout.get("traffic_percent")
    if percent is not None and percent != int(percent):
        problems.append(f"key 'environments.production.rollout.traffic_percent' is {percent:g}: SageMaker sizes "
                        f"traffic steps in whole percents of capacity. Fix: use a whole number, e.g. "
                        f"{max(1, round(percent))}")
    if rollout.get("strategy") == "canary" and percent is not None and percent > MAX_CANARY_PERCENT:
        problems.append(f"key 'environments.production.rollout.traffic_percent' is {percent:g}, but a canary is at "
                        f"most {MAX_CANARY_PERCENT}% of the new fleet (SageMaker's limit). Fix: lower it, or use "
                        f"strategy linear")
    if rollout.get("strategy") in ("canary", "linear") and "traffic_percent" not in rollout:
        problems.append(f"key 'environments.production.rollout.traffic_percent' is missing: a {rollout['strategy']} "
                        f"rollout shifts that share of the traffic at a time. Fix: add e.g. traffic_percent: 10")
    if rollout.get("strategy") == "all_at_once" and "traffic_percent" in rollout:
        problems.append("key 'environments.production.rollout.traffic_percent' is set, but an all_at_once rollout "
                        "shifts all traffic at once. Fix: remove it, or use strategy canary or linear")
    return problems


def _serving_problems(serving: dict, objective: str) -> list[str]:
    """Settings the container would take but answer badly: NaN for a key, a 500 for every request or answer."""
    keys = serving.get("inference_output", [])
    problems = []
    if keys and objective not in container.OUTPUT_KEYS:
        problems.append(f"key 'serving.inference_output' is set, but the SageMaker XGBoost container has no selectable "
                        f"output for objective {objective!r} (it answers every request with a 500). Fix: remove it; "
                        f"objectives that have one: {list(container.OUTPUT_KEYS)}")
    elif keys:
        unanswered = [k for k in keys if k not in container.OUTPUT_KEYS[objective]]
        if unanswered:
            problems.append(f"key 'serving.inference_output' asks for {unanswered}, which objective {objective} does "
                            f"not answer (the container writes NaN for them). Fix: choose from "
                            f"{list(container.OUTPUT_KEYS[objective])}")
    accept = serving.get("default_accept")
    if accept in container.SELECTABLE_ONLY_ACCEPTS and not keys:
        problems.append(f"key 'serving.default_accept' is {accept!r}, which the container can only answer with "
                        f"serving.inference_output set (every request without Accept would get a 500). Fix: set "
                        f"inference_output too, or use text/csv or application/json")
    return problems


def _monitoring_problems(drift: dict) -> list[str]:
    """Drift tests the monitor does not know, and thresholds outside what a test can measure."""
    if not drift:
        return []
    from modelops.monitoring.drift import TESTS  # numpy: only for a model.yml that sets drift tests or thresholds

    problems = []
    defaults = DriftConfig()
    for key, kind in (("numeric_test", "numeric"), ("categorical_test", "categorical")):
        name = drift.get(key, getattr(defaults, key))
        known = [t.name for t in TESTS.values() if t.kind == kind]
        if name not in known:
            problems.append(f"key 'monitoring.drift.{key}' is {name!r}, not a {kind} drift test. Fix: use one of "
                            f"{known}")
            continue
        threshold = drift.get(key.replace("_test", "_threshold"))
        if threshold is not None and TESTS[name].bounded and threshold > 1:
            problems.append(f"key 'monitoring.drift.{key.replace('_test', '_threshold')}' is {threshold}, but "
                            f"{name} lies between 0 and 1, so it would never drift. Fix: use a value below 1 "
                            f"(default {TESTS[name].default_threshold})")
    return problems


def canonical_label(value: Any) -> str:
    """How a class or category value is compared: as trimmed text, with an integral number in its integer form.

    So the class ``2`` in model.yml, the text ``2`` in a CSV file and ``2.0`` from a float column are one value;
    ``02`` stays itself (a code with a leading zero is not the number 2).
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.split(".", 1)[0] if _INTEGRAL.match(text) else text


_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")


def _class_problems(problem_type: str, data: dict, hyperparameters: dict) -> list[str]:
    problems = []
    classes = data.get("classes")
    if problem_type != "multiclass":
        if classes is not None:
            problems.append(f"key 'data.classes' is for multiclass models, not {problem_type}. Fix: remove it, or "
                            f"set problem_type: multiclass")
        if "num_class" in hyperparameters:
            problems.append("key 'training.hyperparameters.num_class' is for multiclass models. Fix: remove it")
        return problems
    if not classes:
        return ["key 'data.classes' is missing: a multiclass model lists the target's values, which are "
                "label-encoded 0, 1, ... in that order. Fix: add e.g. classes: [setosa, versicolor, virginica]"]
    labels = [canonical_label(c) for c in classes]
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        problems.append(f"key 'data.classes' names {twice} twice (values are compared as text, 2 and 2.0 alike). "
                        f"Fix: list each class once")
    if len(classes) < MIN_CLASSES:
        problems.append(f"key 'data.classes' lists {len(classes)} classes; a multiclass model needs at least "
                        f"{MIN_CLASSES}. Fix: use problem_type: binary with positive_label for two classes")
    given = hyperparameters.get("num_class")
    if given is not None and given != len(classes):
        problems.append(f"key 'training.hyperparameters.num_class' is {given!r} but data.classes lists "
                        f"{len(classes)}. Fix: remove num_class; training sets it from data.classes")
    return problems


def _tuning_problems(raw: dict) -> list[str]:
    tuning = raw.get("tuning")
    if tuning is None:
        return []
    problems = []
    choices = TUNING_OBJECTIVES[raw["problem_type"]]
    objective = tuning.get("objective")
    if objective is not None and (not objective.startswith("validation:") or objective[11:] not in choices):
        problems.append(f"key 'tuning.objective' is {objective!r}, not a validation metric a {raw['problem_type']} "
                        f"search can optimise. Fix: use one of {[f'validation:{m}' for m in choices]}")
    for name, spec in tuning["parameters"].items():
        key = f"tuning.parameters.{name}"
        kinds = [k for k in ("int", "float", "categorical") if k in spec]
        if name in UNSEARCHABLE:
            why = ("the search sets it itself (num_round by early stopping on the validation split: see "
                   "tuning.max_rounds)" if name in ("num_round", "early_stopping_rounds", "eval_metric")
                   else "it is not a modelling choice")
            problems.append(f"key '{key}' cannot be searched: {why}. Fix: remove it")
        elif name not in SAGEMAKER_XGBOOST_HYPERPARAMETERS:
            close = difflib.get_close_matches(name, SAGEMAKER_XGBOOST_HYPERPARAMETERS, n=1)
            problems.append(f"key '{key}' is not a SageMaker XGBoost hyperparameter"
                            f"{f' (did you mean {close[0]!r}?)' if close else ''}. Fix: correct the spelling")
        if len(kinds) != 1:
            problems.append(f"key '{key}' must give exactly one of int: [low, high], float: [low, high] or "
                            f"categorical: [values]. Fix: e.g. {{float: [0.01, 0.3], log: true}}")
            continue
        kind = kinds[0]
        if kind == "categorical":
            if "log" in spec:
                problems.append(f"key '{key}' is categorical, so log does not apply. Fix: remove log")
            continue
        low, high = spec[kind]
        if kind == "int" and (int(low) != low or int(high) != high):
            problems.append(f"key '{key}' is an int range, but [{low}, {high}] holds a fraction. Fix: use whole "
                            f"numbers, or float:")
        if low >= high:
            problems.append(f"key '{key}' has low {low} not below high {high}. Fix: order them [low, high]")
        elif spec.get("log") and low <= 0:
            problems.append(f"key '{key}' is log-scaled, so its low must be above 0 (it is {low}). Fix: raise it or "
                            f"drop log")
    rounds = tuning.get("max_rounds", 1000)
    stopping = tuning.get("early_stopping_rounds", raw["training"]["hyperparameters"].get("early_stopping_rounds", 30))
    if stopping >= rounds:
        problems.append(f"key 'tuning.early_stopping_rounds' ({stopping}) is not below tuning.max_rounds ({rounds}), "
                        f"so no trial would stop early. Fix: lower it or raise max_rounds")
    return problems


def _review_problems(raw: dict) -> list[str]:
    review = raw.get("review") or {}
    allowed = METRICS[raw["problem_type"]]
    return [f"key 'review.metrics.{name}' is not a metric of a {raw['problem_type']} model. Fix: use one of "
            f"{list(allowed)}" for name in review.get("metrics") or {} if name not in allowed]


def _replace_folder(config: ModelConfig, folder: Path) -> ModelConfig:
    from dataclasses import replace

    return replace(config, folder=folder)


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing (null)"}.get(type(value), type(value).__name__)
