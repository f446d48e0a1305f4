"""Incremental runs: reuse a previous run when it would produce the same result.

Two kinds of reuse, chosen per notebook in the stages table (``ci/stages.py``):

- ``dataset``: the dataset the notebook would write from the current data is already complete.
- ``fingerprint``: a previous passed run had the same fingerprint (the notebook, its parameters, the
  ``modelops`` library's source hash, and the inputs the table lists: the model folder's files, the dataset,
  the challenger and champion, the package chosen for deployment) and what it produced still holds (the
  version it registered is still in the registry with the same artifact; the endpoint still serves what it
  deployed).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ci.artifacts import Artifacts, NotebookRun, latest
from ci.models import ModelFolder
from ci.stages import Notebook
from modelops.backends.base import Backend
from modelops.records import DeployRecord, Record, TrainRecord
from modelops.review.lineage import library_hash

R = TypeVar("R", bound=Record)


@dataclass
class StageContext:
    """What a stage run knows so far: the model, the backend, and the runs of this stage before this one."""

    folder: ModelFolder
    stage: str
    backend: str  # the backend's name, as the notebooks' backend parameter takes it
    ops: Backend
    artifacts: Artifacts
    parameters: dict[str, Any]
    runs: list[NotebookRun]

    def latest(self, kind: type[R]) -> R | None:
        """The newest record of ``kind`` that a run of this stage handed on (None if none did)."""
        return latest(self.runs, kind)


def fingerprint(notebook: Path, parameters: dict[str, Any], inputs: dict[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(Path(notebook).read_bytes())
    digest.update(json.dumps({"parameters": parameters, "inputs": inputs, "code": library_hash()}, sort_keys=True,
                             default=str).encode())
    return digest.hexdigest()


def folder_hash(folder: Path) -> str:
    """sha256 of a model folder's files other than its notebooks (model.yml, features.py, ...).

    The notebooks are left out: each run's fingerprint hashes its own notebook already, and a change to one
    notebook should not rerun the others.
    """
    digest = hashlib.sha256()
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".ipynb") or name.startswith("."):
                continue
            path = Path(base) / name
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _model_folder(ctx: StageContext, parameters: dict) -> Any:
    return folder_hash(ctx.folder.path)


def _dataset(ctx: StageContext, parameters: dict) -> Any:
    return parameters.get("dataset")


def _challenger(ctx: StageContext, parameters: dict) -> Any:
    trained = ctx.latest(TrainRecord)
    if trained is None:
        return None
    return {"version": trained.version, "artifact_sha256": trained.artifact_sha256,
            "evaluation": trained.evaluation_uri}


def _champion(ctx: StageContext, parameters: dict) -> Any:
    from modelops.review.packages import champion

    trained = ctx.latest(TrainRecord)
    best = champion(ctx.ops.registry, ctx.folder.config().name, excluding=trained.version if trained else None)
    return best.version if best else None


def _package(ctx: StageContext, parameters: dict) -> Any:
    from modelops.errors import ModelOpsError
    from modelops.release.deploy import select_package

    try:
        package = select_package(ctx.ops.registry, ctx.folder.config(), version=parameters.get("version"),
                                 latest_approved=bool(parameters.get("latest_approved")))
    except ModelOpsError:
        return _ALWAYS  # let the notebook run and show why
    return package.package_id


_ALWAYS = object()

#: What a notebook reads besides its parameters, by the names the stages table uses.
INPUTS: dict[str, Callable[[StageContext, dict], Any]] = {
    "model_folder": _model_folder,
    "dataset": _dataset,
    "challenger": _challenger,
    "champion": _champion,
    "package": _package,
}


def _registered(run: NotebookRun, ctx: StageContext) -> bool:
    record = run.record
    if not isinstance(record, TrainRecord) or record.version is None:
        return False
    return ctx.ops.registry.get(ctx.folder.config().name, record.version).artifact_sha256 == record.artifact_sha256


def _serving(run: NotebookRun, ctx: StageContext) -> bool:
    record = run.record
    if not isinstance(record, DeployRecord):
        return False
    status = ctx.ops.endpoints.status(ctx.folder.config().deploy_environment(record.env_name).endpoint)
    return status is not None and status.status == "InService" and status.version == record.version


#: What must still be true for a previous run's result to be reused.
HOLDS: dict[str, Callable[[NotebookRun, StageContext], bool]] = {
    "registered": _registered,
    "serving": _serving,
}


def run_fingerprint(notebook: Notebook, path: Path, parameters: dict[str, Any], ctx: StageContext) -> str | None:
    """The fingerprint of running ``notebook`` with ``parameters`` now, or None when it must always run."""
    if notebook.reuse != "fingerprint":
        return None
    inputs = {name: INPUTS[name](ctx, parameters) for name in notebook.inputs}
    if any(value is _ALWAYS for value in inputs.values()):
        return None
    return fingerprint(path, parameters, inputs)


def reusable(notebook: Notebook, key: str | None, ctx: StageContext, variant: str = "") -> NotebookRun | None:
    """The previous run of ``notebook`` (with ``variant``) that can stand in for running it with fingerprint ``key``."""
    from modelops.errors import ModelOpsError

    previous = ctx.artifacts.previous(ctx.folder.name, notebook.name, variant)
    if key is None or previous is None or previous.fingerprint != key or previous.status not in ("passed", "skipped"):
        return None
    if not previous.ipynb or not (ctx.artifacts.root / previous.ipynb).exists():
        return None
    try:
        holds = notebook.holds is None or HOLDS[notebook.holds](previous, ctx)
    except ModelOpsError:
        return None
    return previous if holds else None


def gathered(ctx: StageContext, parameters: dict[str, Any]):
    """The dataset gathering would write with these parameters, if it is already complete (else None)."""
    from modelops.data.datasets import gathered_dataset
    from modelops.errors import ModelOpsError

    try:
        return gathered_dataset(ctx.ops.store, ctx.folder.config(), source=parameters.get("source"),
                                seed=parameters.get("split_seed"), output=parameters.get("output"))
    except ModelOpsError:
        return None  # let the gather notebook run and show what is wrong
