"""Model configuration: load and validate a model folder's model.yml into frozen dataclasses.

One module per model.yml section owns that section's schema, dataclasses, defaults, parsing and checks;
``model`` assembles them into the whole file's schema and ``ModelConfig``.
"""

from modelops.config.data import FEATURES_FILE, MIN_CLASSES, DataConfig, canonical_label
from modelops.config.environments import (
    ENVIRONMENT_NAMES,
    MAX_CANARY_PERCENT,
    PRODUCTION,
    ROLLOUT_STRATEGIES,
    SLO,
    STAGING,
    STAGING_SUFFIX,
    Autoscaling,
    DeployEnvironment,
    Rollout,
    endpoint_name,
    endpoint_owner,
)
from modelops.config.evaluation import DEFAULT_DECISION_THRESHOLD
from modelops.config.model import (
    CONFIG_FILE,
    MODEL_NAME_PATTERN,
    SCHEMA,
    ModelConfig,
    is_valid_model_name,
    load_model_config,
    parse_model_config,
)
from modelops.config.monitoring import (
    DEFAULT_CAPTURE_MAX_DISK_MB,
    DEFAULT_CAPTURE_SAMPLING_PERCENTAGE,
    DRIFT_TESTS,
    DataCaptureConfig,
    DriftConfig,
    DriftTestSpec,
    MonitoringConfig,
)
from modelops.config.problem import METRICS_BY_PROBLEM_TYPE, PROBLEM_TYPES
from modelops.config.quality import Threshold
from modelops.config.review import ChangeRule, ReviewConfig
from modelops.config.schema import DEFAULT_INSTANCE_COUNT, DEFAULT_INSTANCE_TYPE
from modelops.config.serving import ServingConfig
from modelops.config.split import SplitConfig
from modelops.config.training import (
    CONTAINER_VERSION_PATTERN,
    DEFAULT_MAX_RUNTIME_SECONDS,
    OBJECTIVES,
    SAGEMAKER_XGBOOST_HYPERPARAMETERS,
    TrainingConfig,
    check_container_version,
    installed_xgboost_version,
)
from modelops.config.tuning import UNSEARCHABLE, SearchParameter, TuningConfig

__all__ = [
    "CONFIG_FILE", "CONTAINER_VERSION_PATTERN", "DEFAULT_CAPTURE_MAX_DISK_MB", "DEFAULT_CAPTURE_SAMPLING_PERCENTAGE",
    "DEFAULT_DECISION_THRESHOLD", "DEFAULT_INSTANCE_COUNT",
    "DEFAULT_INSTANCE_TYPE", "DEFAULT_MAX_RUNTIME_SECONDS", "DRIFT_TESTS", "ENVIRONMENT_NAMES", "FEATURES_FILE",
    "MAX_CANARY_PERCENT", "METRICS_BY_PROBLEM_TYPE", "MIN_CLASSES", "MODEL_NAME_PATTERN", "OBJECTIVES",
    "PROBLEM_TYPES", "PRODUCTION", "ROLLOUT_STRATEGIES", "SAGEMAKER_XGBOOST_HYPERPARAMETERS", "SCHEMA", "SLO",
    "STAGING", "STAGING_SUFFIX", "UNSEARCHABLE", "Autoscaling", "ChangeRule", "DataCaptureConfig", "DataConfig",
    "DeployEnvironment", "DriftConfig", "DriftTestSpec", "ModelConfig", "MonitoringConfig", "ReviewConfig", "Rollout",
    "SearchParameter", "ServingConfig", "SplitConfig", "Threshold", "TrainingConfig", "TuningConfig",
    "canonical_label", "check_container_version", "endpoint_name", "endpoint_owner", "installed_xgboost_version",
    "is_valid_model_name", "load_model_config", "parse_model_config",
]
