"""The whole model.yml: the top-level keys, the schema assembled from the sections', and ModelConfig built from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import modelops.config.data as data
import modelops.config.environments as environments
import modelops.config.evaluation as evaluation
import modelops.config.monitoring as monitoring
import modelops.config.problem as problem
import modelops.config.quality as quality
import modelops.config.review as review
import modelops.config.serving as serving
import modelops.config.split as split
import modelops.config.training as training
import modelops.config.tuning as tuning
from modelops.config.data import FEATURES_FILE, DataConfig
from modelops.config.environments import (
    ENVIRONMENT_NAMES,
    PRODUCTION,
    SLO,
    STAGING_SUFFIX,
    DeployEnvironment,
    endpoint_name,
)
from modelops.config.monitoring import MonitoringConfig
from modelops.config.problem import METRICS_BY_PROBLEM_TYPE
from modelops.config.quality import Threshold
from modelops.config.review import ReviewConfig
from modelops.config.schema import check_schema, kind
from modelops.config.serving import ServingConfig
from modelops.config.split import SplitConfig
from modelops.config.training import TrainingConfig, check_container_version, xgboost_version
from modelops.config.tuning import TuningConfig
from modelops.errors import ConfigError
from modelops.settings import MODEL_CONFIG_FILE

if TYPE_CHECKING:
    import pandas as pd

CONFIG_FILE = MODEL_CONFIG_FILE

# SageMaker resource names: alphanumerics and hyphens, starting and ending alphanumeric. We keep the model
# name to 40 characters so that timestamped names built from it ("<name>-<yyyymmdd-hhmmss>-<n>") stay within
# SageMaker's 63-character limit.
MODEL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,39}$")

#: The sections' schemas, by their model.yml key; with the top-level keys they are the whole schema.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "problem_type", "data", "split", "training", "quality"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "problem_type": problem.SCHEMA,
        "data": data.SCHEMA,
        "split": split.SCHEMA,
        "training": training.SCHEMA,
        "environments": environments.SCHEMA,
        "evaluation": evaluation.SCHEMA,
        "quality": quality.SCHEMA,
        "monitoring": monitoring.SCHEMA,  # data capture and the monitor's checks (docs/monitoring.md)
        "serving": serving.SCHEMA,
        "tuning": tuning.SCHEMA,
        "review": review.SCHEMA,
    },
}

#: The sections whose ``parse(raw)`` builds the ModelConfig field of the same name.
_PARSED = {"data": data, "split": split, "training": training, "environments": environments, "quality": quality,
           "serving": serving, "monitoring": monitoring, "tuning": tuning, "review": review}
#: The sections' semantic checks, in the order their problems are reported (the schema has passed).
_PROBLEMS = (environments.problems, data.problems, split.problems, training.problems, quality.problems,
             serving.problems, tuning.problems, review.problems, monitoring.problems)


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
    decision_threshold: float = evaluation.DEFAULT_DECISION_THRESHOLD
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
            **{f"{env} endpoint": self.deploy_environment(env).describe() for env in ENVIRONMENT_NAMES},
            "promotion gate (production SLO)": self.slo.describe(),
            "endpoint container environment": ", ".join(f"{k}={v}" for k, v in self.serving.environment.items())
                                              or "(defaults: scores, text/csv)",
        }
        return pd.DataFrame({"value": rows}).rename_axis("setting")

    @property
    def metrics(self) -> tuple[str, ...]:
        """The test metrics this model reports (and may gate on)."""
        return METRICS_BY_PROBLEM_TYPE[self.problem_type]

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
        return xgboost_version(self.training.container_version)


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
        # libyaml's loader when PyYAML has it: 10x faster, and a pipeline run reads model.yml dozens of times.
        raw = yaml.load(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML ({exc}). Fix: correct the syntax at the line shown.") from exc
    config = replace(parse_model_config(raw, source=str(file)), folder=file.parent.resolve())
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
        raise ConfigError(f"{source}: expected a mapping of keys (name, problem_type, data, ...), got {kind(raw)}.")
    if "endpoint" in raw:
        raise ConfigError(f"{source}: key 'endpoint' is replaced by 'environments': each model has a staging and a "
                          f"production endpoint. Fix: move its instance_type and instance_count under "
                          f"environments.staging and environments.production (see abalone_model/model.yml).")
    check_schema(raw, SCHEMA, source)
    problems = _name_problems(raw["name"])
    for section_problems in _PROBLEMS:
        problems += section_problems(raw)
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
    return ModelConfig(
        name=raw["name"], description=raw.get("description", ""), problem_type=raw["problem_type"],
        **{key: section.parse(raw) for key, section in _PARSED.items()}, decision_threshold=evaluation.parse(raw))


def is_valid_model_name(name: str) -> bool:
    return bool(MODEL_NAME_PATTERN.match(name))


def _name_problems(name: str) -> list[str]:
    problems = []
    if not is_valid_model_name(name):
        problems.append(
            f"key 'name' is {name!r}, not a valid SageMaker name. Fix: use 1-40 letters, digits and hyphens, "
            f"starting and ending with a letter or digit (e.g. 'abalone-model')"
        )
    if is_valid_model_name(name) and name.endswith(STAGING_SUFFIX):
        problems.append(f"key 'name' is {name!r}, which ends with {STAGING_SUFFIX!r}: its production endpoint would "
                        f"take the name of model {name[:-len(STAGING_SUFFIX)]!r}'s staging endpoint. Fix: choose a "
                        f"name that does not end with {STAGING_SUFFIX!r}")
    return problems
