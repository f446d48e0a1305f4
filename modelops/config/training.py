"""model.yml ``training``: the SageMaker XGBoost container version, its hyperparameters and the training compute."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.config.schema import (
    DEFAULT_INSTANCE_COUNT,
    DEFAULT_INSTANCE_TYPE,
    INSTANCE_COUNT,
    INSTANCE_TYPE,
    given,
)
from modelops.errors import ConfigError
from modelops.settings import MODEL_CONFIG_FILE

#: A training job's time limit when model.yml does not set one.
DEFAULT_MAX_RUNTIME_SECONDS = 3600

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

CONTAINER_VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)-(\d+)$")

SCHEMA = {
    "type": "object",
    "required": ["container_version", "hyperparameters"],
    "additionalProperties": False,
    "properties": {
        "container_version": {"type": "string"},
        "instance_type": INSTANCE_TYPE,
        "instance_count": INSTANCE_COUNT,
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
}


@dataclass(frozen=True)
class TrainingConfig:
    """XGBoost container version, hyperparameters (SageMaker names) and training compute."""

    container_version: str
    hyperparameters: dict[str, Any]
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = DEFAULT_INSTANCE_COUNT
    max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS


def parse(raw: dict) -> TrainingConfig:
    training = raw["training"]
    return TrainingConfig(**{**given(training, TrainingConfig), "hyperparameters": dict(training["hyperparameters"])})


def problems(raw: dict) -> list[str]:
    """A container version SageMaker does not have, unknown hyperparameters, an objective of another problem type."""
    problems = []
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
    objective, problem_type = hyper.get("objective"), raw["problem_type"]
    if objective not in OBJECTIVES[problem_type]:
        problems.append(f"key 'training.hyperparameters.objective' is {objective!r}, which does not fit problem_type "
                        f"{problem_type!r}. Fix: use one of {list(OBJECTIVES[problem_type])}")
    if "early_stopping_rounds" in hyper and hyper["early_stopping_rounds"] >= hyper["num_round"]:
        problems.append("key 'training.hyperparameters.early_stopping_rounds' is not below num_round, so it never "
                        "stops early. Fix: lower it or remove it")
    return problems


def xgboost_version(container_version: str) -> str:
    """The xgboost major.minor a SageMaker XGBoost container runs ('3.2' for '3.2-0')."""
    major, minor, _ = CONTAINER_VERSION_PATTERN.match(container_version).groups()
    return f"{major}.{minor}"


def check_container_version(container_version: str, *, source: str = MODEL_CONFIG_FILE) -> None:
    """Refuse a SageMaker XGBoost container whose xgboost major.minor differs from the installed xgboost.

    A model saved by a newer xgboost loads without complaint in an older one but predicts wrongly,
    so training locally with one version and serving in a container with another is never allowed.
    """
    version = installed_xgboost_version()
    installed = ".".join(version.split(".")[:2])
    wanted = xgboost_version(container_version)
    if wanted != installed:
        raise ConfigError(
            f"{source}: key 'training.container_version' is {container_version!r} (xgboost {wanted}) "
            f"but xgboost {version} is installed. A model saved by one version predicts wrongly "
            f"in the other. Fix: set container_version to '{installed}-0' (or the container release for "
            f"{installed}), or install xgboost-cpu=={wanted}.*."
        )


def installed_xgboost_version() -> str:
    """The installed xgboost's version, read as xgboost itself reads it (its VERSION file), without importing it.

    Importing xgboost is slow and pulls in scikit-learn when that is installed: reading a model.yml must not cost
    that in the CLI, or in the gather and review kernels, which never train.
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
