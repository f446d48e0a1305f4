"""Incremental runs: skip a notebook whose inputs did not change and whose result still holds.

A run's fingerprint hashes the notebook, its parameters, the ``modelops`` code it imports, the model's
``model.yml`` and what the notebook reads: the dataset (train_register), the challenger and champion
(review), the package chosen for deployment (deploy). A previous passed run with the same fingerprint is
reused only while its result still holds: the version it registered is still in the registry with the same
artifact, the endpoint still serves the version it deployed.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import modelops
from ci.artifacts import Artifacts, NotebookRun

#: Notebooks that are worth skipping (gather_data has its own check: is this data's dataset complete?).
INCREMENTAL = ("train_register", "review", "deploy")


@lru_cache(maxsize=1)
def code_hash() -> str:
    """sha256 of the modelops package's sources: a library change reruns every notebook."""
    root = Path(modelops.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(notebook: Path, parameters: dict[str, Any], inputs: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(Path(notebook).read_bytes())
    digest.update(json.dumps({"parameters": parameters, "inputs": inputs, "code": code_hash()}, sort_keys=True,
                             default=str).encode())
    return digest.hexdigest()


def inputs(name: str, folder, ops, parameters: dict[str, Any], artifacts: Artifacts) -> dict[str, Any] | None:
    """What a notebook reads besides its parameters, or None when it should always run."""
    if name not in INCREMENTAL:
        return None
    config = folder.config()
    found: dict[str, Any] = {"model.yml": hashlib.sha256((folder.path / "model.yml").read_bytes()).hexdigest()}
    if name == "train_register":
        found["dataset"] = parameters.get("dataset")
    elif name == "review":
        from modelops.packages import champion

        trained = artifacts.previous(folder.name, "train_register")
        challenger = trained.scraps.get("version") if trained else None
        best = champion(ops.registry, config.name, excluding=challenger)
        found.update(challenger=trained.fingerprint if trained else None, champion=best.version if best else None)
    elif name == "deploy":
        from modelops.deploy import select_package
        from modelops.errors import ModelOpsError

        try:
            package = select_package(ops.registry, config, version=parameters.get("version"),
                                     latest_approved=bool(parameters.get("latest_approved")))
        except ModelOpsError:
            return None  # let the notebook run and show why
        found["package"] = package.package_id
    return found


def still_holds(run: NotebookRun, folder, ops) -> bool:
    """Whether what a previous run produced is still there (registered version, live endpoint)."""
    from modelops.errors import ModelOpsError

    version = run.scraps.get("version")
    config = folder.config()
    try:
        if run.notebook == "train_register":
            return ops.registry.get(config.name, version).artifact_sha256 == run.scraps.get("artifact_sha256")
        if run.notebook == "deploy":
            status = ops.endpoints.status(config.name)
            return status is not None and status.status == "InService" and status.version == version
    except ModelOpsError:
        return False
    return True


def reusable(artifacts: Artifacts, model: str, notebook: str, key: str, folder, ops) -> NotebookRun | None:
    """The previous run to reuse for this fingerprint, if any."""
    previous = artifacts.previous(model, notebook)
    if previous is None or previous.fingerprint != key or previous.status not in ("passed", "skipped"):
        return None
    if not previous.ipynb or not (artifacts.root / previous.ipynb).exists():
        return None
    return previous if still_holds(previous, folder, ops) else None
