"""Model packages above any backend: registering an evaluated model, and finding the champion."""

from __future__ import annotations

from modelops.backends.base import APPROVED, PackageVersion, Registry
from modelops.config import ModelConfig
from modelops.evaluation import Evaluation, QualityReport
from modelops.lineage import model_lineage


def register_model(backend, config: ModelConfig, dataset, training, evaluation: Evaluation, gates: QualityReport,
                   *, notebook_artifact: str | None = None) -> PackageVersion:
    """Register an evaluated model as a new PendingManualApproval version with its metrics and lineage.

    Raises:
        QualityGateFailed: the gates did not pass (nothing is registered).
    """
    gates.raise_if_failed()
    report = {
        "metrics": evaluation.metrics,
        "baseline": evaluation.baseline,
        "quality_gates": gates.scraps()["quality_gates"],
        "test_rows": int(len(evaluation.y_true)),
        "feature_importance": evaluation.feature_importance.head(20).to_dict(),
    }
    confusion = evaluation.confusion_matrix()
    if confusion is not None:
        report["confusion_matrix"] = confusion.to_dict()
    if config.problem_type == "multiclass":
        report["classes"] = list(config.data.classes)
    metrics = {**evaluation.metrics, **{f"baseline_{k}": v for k, v in evaluation.baseline.items()}}
    return backend.registry.register(
        config.name,
        training=training,
        metrics=metrics,
        data_sha256=dataset.raw_sha256,
        dataset_id=dataset.dataset_id,
        lineage=model_lineage(config.folder, notebook_artifact=notebook_artifact),
        description=config.description,
        report=report,
    )


def champion(registry: Registry, group: str, *, excluding: int | None = None) -> PackageVersion | None:
    """The newest approved version of a group (other than ``excluding``), or None."""
    return next((p for p in registry.versions(group, APPROVED) if p.version != excluding), None)


def pending_for_folder(registry: Registry, config: ModelConfig) -> PackageVersion:
    """The version to approve when none is named: the newest pending one trained from this exact folder tree.

    Raises:
        RegistryError: none matches (the message lists the pending versions and how to name one).
    """
    from modelops.backends.base import PENDING
    from modelops.errors import RegistryError
    from modelops.lineage import working_tree_hash

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
