"""Model packages above any backend: an evaluated model's record and report, registering it, finding the champion."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from modelops.backends.base import Backend, Registry, Store
from modelops.config import ModelConfig
from modelops.entities import APPROVED, PackageVersion, TrainingResult
from modelops.errors import StoreError
from modelops.records import Gate, TrainRecord
from modelops.review.evaluation import Evaluation, QualityReport
from modelops.review.lineage import library_hash, model_lineage

if TYPE_CHECKING:
    from modelops.data.datasets import Dataset
    from modelops.monitoring.baseline import Baseline  # the monitoring layer writes it; registering only reads it


def evaluation_uri(store: Store, group: str, job_name: str) -> str:
    """Where a training job's evaluation report lives in the store (the SageMaker package's ModelMetrics)."""
    return store.uri(group, "evaluation", job_name, "report.json")


def evaluation_report(config: ModelConfig, evaluation: Evaluation, gates: QualityReport, record: TrainRecord) -> dict:
    """The evaluation report stored beside the artifact: the record, plus what a reviewer digs into."""
    report = {
        "metrics": evaluation.metrics,
        "null_metrics": evaluation.null_metrics,
        "quality_gates": {r.metric: r.passed for r in gates.results},
        "test_rows": int(len(evaluation.y_true)),
        "feature_importance": evaluation.feature_importance.head(20).to_dict(),
        "record": record.to_scraps(),
    }
    confusion = evaluation.confusion_matrix()
    if confusion is not None:
        report["confusion_matrix"] = confusion.to_dict()
    if config.problem_type == "multiclass":
        report["classes"] = list(config.data.classes)
    return report


def record_evaluation(ops: Backend, config: ModelConfig, dataset: Dataset, training: TrainingResult,
                      evaluation: Evaluation, gates: QualityReport) -> TrainRecord:
    """Store the evaluation report and return the train record before registration (``version`` None).

    Written whether or not the gates passed: it is what the review reads for a model that failed a gate and
    was not registered.

    Raises:
        StoreError: the report could not be written.
    """
    record = TrainRecord(
        problem_type=config.problem_type,
        metrics=dict(evaluation.metrics),
        null_metrics=dict(evaluation.null_metrics),
        gates=tuple(Gate(r.metric, r.value, r.threshold, r.passed) for r in gates.results),
        job_name=training.job_name,
        artifact_uri=training.artifact_uri,
        artifact_sha256=training.artifact_sha256,
        dataset_id=dataset.dataset_id,
        evaluation_uri=evaluation_uri(ops.store, config.name, training.job_name),
        test_rows=int(len(evaluation.y_true)),
        decision_threshold=evaluation.threshold if config.problem_type == "binary" else None,
        top_features=tuple(evaluation.feature_importance.index[:5]),
        library_hash=library_hash(),
    )
    report = evaluation_report(config, evaluation, gates, record)
    ops.store.put_bytes(record.evaluation_uri, _dumps(report), content_type="application/json")
    return record


def read_evaluation(store: Store, uri: str) -> dict:
    """An evaluation report written by ``record_evaluation``.

    Raises:
        StoreError: missing or unreadable.
    """
    try:
        return json.loads(store.get_bytes(uri))
    except ValueError as exc:
        raise StoreError(f"the evaluation report {uri} is not JSON ({exc}). Fix: train the model again.") from exc


def register_model(ops: Backend, config: ModelConfig, dataset: Dataset, training: TrainingResult,
                   evaluation: Evaluation, gates: QualityReport, *, notebook_artifact: str | None = None,
                   record: TrainRecord | None = None, baseline: Baseline | None = None) -> PackageVersion:
    """Register an evaluated model as a new PendingManualApproval version with its metrics and lineage.

    Args:
        record: the record ``record_evaluation`` returned (its report is registered); built here when None.
        baseline: the monitoring baseline ``modelops.write_baseline`` wrote (its files are registered with the
            version, and named in its report); None: the version cannot be monitored.

    Raises:
        QualityGateFailed: the gates did not pass (nothing is registered).
    """
    gates.raise_if_failed()
    record = record or record_evaluation(ops, config, dataset, training, evaluation, gates)
    metrics = {**evaluation.metrics, **{f"null_{k}": v for k, v in evaluation.null_metrics.items()}}
    report = evaluation_report(config, evaluation, gates, record)
    if baseline is not None:
        report["monitoring_baseline"] = dict(baseline.uris)
    return ops.registry.register(
        config.name,
        training=training,
        metrics=metrics,
        data_sha256=dataset.raw_sha256,
        dataset_id=dataset.dataset_id,
        lineage=model_lineage(config.folder, notebook_artifact=notebook_artifact),
        description=config.description,
        report=report,
        baselines=dict(baseline.uris) if baseline is not None else None,
    )


def champion(registry: Registry, group: str, *, excluding: int | None = None) -> PackageVersion | None:
    """The newest approved version of a group (other than ``excluding``), or None."""
    return next((p for p in registry.versions(group, APPROVED) if p.version != excluding), None)


def pending_for_folder(registry: Registry, config: ModelConfig) -> PackageVersion:
    """The version to approve when none is named: the newest pending one trained from this exact folder tree.

    Raises:
        RegistryError: none matches (the message lists the pending versions and how to name one).
    """
    from modelops.entities import PENDING
    from modelops.errors import RegistryError
    from modelops.review.lineage import working_tree_hash

    tree = working_tree_hash(config.folder)
    pending = registry.versions(config.name, PENDING)
    match = next((p for p in pending if tree and p.lineage.tree_hash == tree), None)
    if match is None:
        listing = ", ".join(f"v{p.version} (tree {(p.lineage.tree_hash or '-')[:8]}, {p.lineage.branch})"
                            for p in pending) or "none"
        raise RegistryError(
            f"no pending version of {config.name} was trained from the model folder as it is now (tree "
            f"{(tree or '-')[:8]}); pending versions: {listing}. Fix: pass --version N, or train this folder first "
            f"(`python -m ci run {config.folder.name} --stage train`)."
        )
    return match


def _dumps(value: dict) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()
