"""modelops: the library the model notebooks import (config, data, training, registry, endpoints, evaluation)."""

from __future__ import annotations

import importlib

from modelops.errors import ModelOpsError
from modelops.settings import LIBRARY_VERSION as __version__

# Everything but the errors loads on first use (pandas, xgboost, matplotlib; yaml and jsonschema for the
# config), so `python -m ci --help` and `ci changed` stay fast.
_LAZY = {
    "ModelConfig": "modelops.config",
    "load_model_config": "modelops.config",
    "get_backend": "modelops.backends",
    "Backend": "modelops.backends.base",
    "fetch_source": "modelops.data.sources",
    "fetch_data": "modelops.data.datasets",
    "write_dataset": "modelops.data.datasets",
    "gather_dataset": "modelops.data.gather",
    "load_dataset": "modelops.data.datasets",
    "read_split": "modelops.data.datasets",
    "read_raw": "modelops.data.prepare",
    "prepare_frame": "modelops.data.prepare",
    "prepare_data": "modelops.data.prepare",
    "encode_rows": "modelops.data.datasets",
    "read_records": "modelops.data.prepare",
    "split_frame": "modelops.data.prepare",
    "glue_figure": "modelops.notebook.glue",
    "glue_values": "modelops.notebook.glue",
    "glue_figures": "modelops.notebook.glue",
    "glue_record": "modelops.notebook.glue",
    "train_model": "modelops.training.train",
    "evaluate_model": "modelops.review.evaluation",
    "check_quality": "modelops.review.evaluation",
    "Candidate": "modelops.notebook.candidate",
    "register_model": "modelops.review.packages",
    "review_model": "modelops.review.verdict",
    "tune_model": "modelops.training.tuning",
    "search_space": "modelops.training.tuning",
    "select_package": "modelops.release.deploy",
    "deploy_package": "modelops.release.deploy",
    "verify_endpoint": "modelops.release.deploy",
    "measure_latency": "modelops.release.deploy",
    "transform_table": "modelops.release.transform",
    "DeployRecord": "modelops.records",
    "write_baseline": "modelops.monitoring.baseline",
    "served_model": "modelops.monitoring.traffic",
    "read_capture": "modelops.monitoring.traffic",
    "check_traffic": "modelops.monitoring.checks",
    "live_quality": "modelops.monitoring.quality",
    "record_monitoring": "modelops.monitoring.monitor",
    "check_window": "modelops.monitoring.monitor",
    "run_gate": "modelops.release.gate",
    "check_gate": "modelops.release.gate",
}

#: Modules the notebooks reach by name (``from modelops import plots``).
_MODULES = {"plots": "modelops.notebook.plots"}

__all__ = ["ModelOpsError", "__version__", *_LAZY, *_MODULES]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'modelops' has no attribute {name!r}")
