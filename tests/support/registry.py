"""Registry versions for tests: a training result and a registration with plain lineage, and a seeded registry."""

from __future__ import annotations

from pathlib import Path

from modelops.entities import Lineage, TrainingResult

GROUP = "abalone-model"


def training(job: str = "job-1", sha: str = "a" * 64) -> TrainingResult:
    return TrainingResult(job_name=job, artifact_uri=f"s3://modelops-test/{job}/output/model.tar.gz",
                          artifact_sha256=sha,
                          image="local/sagemaker-xgboost:3.2-0", container_version="3.2-0", xgboost_version="3.2.0",
                          hyperparameters={"num_round": 5, "objective": "reg:squarederror"}, eval_metric="rmse",
                          curves={"validation": [1.0]}, rounds=5, best_iteration=None, duration_seconds=0.1)


def register(registry, tree="t" * 40, **kwargs):
    return registry.register(GROUP, training=kwargs.pop("training", training()), metrics={"rmse": 2.1, "r2": 0.5},
                             data_sha256="d" * 64, dataset_id="ds1",
                             lineage=Lineage(git_commit="c" * 40, branch="feature", tree_hash=tree,
                                             notebook_artifact="abalone_model/train_register.html"), **kwargs)


def seed(home: Path, trees: list[str]):
    """A local registry under ``home`` with one pending version of abalone-model per tree hash, in order."""
    from modelops.backends.local.registry import LocalRegistry

    registry = LocalRegistry(home / "registry.db")
    for i, tree in enumerate(trees, 1):
        registry.register("abalone-model", training=training(f"job-{i}"), metrics={"rmse": 2.0 + i / 10, "r2": 0.5},
                          data_sha256="d" * 64, dataset_id="ds", lineage=Lineage(tree_hash=tree, branch="feature"))
    return registry
