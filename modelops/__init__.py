"""modelops: the library the model notebooks import (config, data, training, registry, endpoints, evaluation)."""

from __future__ import annotations

import importlib

from modelops.errors import ModelOpsError

__version__ = "0.1.0"

# Everything but the errors loads on first use (pandas, xgboost, matplotlib; yaml and jsonschema for the
# config), so `python -m ci --help` and `ci changed` stay fast.
_LAZY = {
    "ModelConfig": "modelops.config",
    "load_model_config": "modelops.config",
    "get_backend": "modelops.backends",
    "fetch_source": "modelops.sources",
    "fetch_data": "modelops.datasets",
    "write_dataset": "modelops.datasets",
    "load_dataset": "modelops.datasets",
    "read_split": "modelops.datasets",
    "read_raw": "modelops.prepare",
    "prepare_frame": "modelops.prepare",
    "prepare_data": "modelops.prepare",
    "encode_rows": "modelops.datasets",
    "read_records": "modelops.prepare",
    "split_frame": "modelops.prepare",
    "glue_figure": "modelops.notebook",
    "glue_values": "modelops.notebook",
    "glue_figures": "modelops.notebook",
    "glue_record": "modelops.notebook",
    "train_model": "modelops.training",
    "evaluate_model": "modelops.evaluation",
    "check_quality": "modelops.evaluation",
    "record_evaluation": "modelops.packages",
    "register_model": "modelops.packages",
    "review_model": "modelops.review",
    "tune_model": "modelops.tuning",
    "search_space": "modelops.tuning",
    "select_package": "modelops.deploy",
    "deploy_package": "modelops.deploy",
    "verify_endpoint": "modelops.deploy",
    "measure_latency": "modelops.deploy",
    "deploy_record": "modelops.deploy",
    "write_baseline": "modelops.baseline",
    "served_model": "modelops.monitor",
    "read_capture": "modelops.monitor",
    "check_traffic": "modelops.monitor",
    "live_quality": "modelops.monitor",
    "record_monitoring": "modelops.monitor",
    "run_gate": "modelops.promotion",
    "check_gate": "modelops.promotion",
}

__all__ = ["ModelOpsError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modelops' has no attribute {name!r}")
