"""Incremental runs: reuse a previous run when it would produce the same result.

Two kinds of reuse, chosen per notebook in the stages table (``ci/stages.py``):

- ``dataset``: the dataset the notebook would write from the current data is already complete.
- ``fingerprint``: a previous passed run had the same fingerprint (the notebook, its parameters, the
  ``modelops`` library's source hash, and the inputs the table lists: the model folder's files, the dataset,
  the challenger and champion, the package chosen for deployment, the package staging serves) and what it
  produced still holds (the version it registered is still in the registry with the same artifact; the
  endpoint still serves what it deployed; production serves the package the gate passed, and the staging
  server it measured is the one still running). The reused run's reason says what still holds.
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
from modelops.config import PRODUCTION, STAGING
from modelops.entities import GATE_PASSED, IN_SERVICE
from modelops.records import DeployRecord, GateRecord, Record, TrainRecord
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


def _staged(ctx: StageContext, parameters: dict) -> Any:
    """The package the staging endpoint serves now (what the gate measures)."""
    from modelops.errors import ModelOpsError
    from modelops.release.gate import staged_package

    try:
        return staged_package(ctx.ops, ctx.folder.config()).package_id
    except ModelOpsError:
        return _ALWAYS  # let the notebook run and show why


_ALWAYS = object()

#: What a notebook reads besides its parameters, by the names the stages table uses.
INPUTS: dict[str, Callable[[StageContext, dict], Any]] = {
    "model_folder": _model_folder,
    "dataset": _dataset,
    "challenger": _challenger,
    "champion": _champion,
    "package": _package,
    "staged": _staged,
}


def _registered(run: NotebookRun, ctx: StageContext) -> str | None:
    record = run.record
    if not isinstance(record, TrainRecord) or record.version is None:
        return None
    package = ctx.ops.registry.get(ctx.folder.config().name, record.version)
    return f"{package.label} still registered" if package.artifact_sha256 == record.artifact_sha256 else None


def _serving(run: NotebookRun, ctx: StageContext) -> str | None:
    record = run.record
    if not isinstance(record, DeployRecord):
        return None
    endpoint = ctx.folder.config().deploy_environment(record.env_name).endpoint
    status = ctx.ops.endpoints.status(endpoint)
    if status is None or status.status != IN_SERVICE or status.version != record.version:
        return None
    return f"{endpoint} still serves v{record.version}"


def _gated(run: NotebookRun, ctx: StageContext) -> str | None:
    """Production already serves the package staging serves, and that package's newest gate passed against the
    staging server still running (the one the reused run measured): a new gate could change nothing."""
    from modelops.release.history import latest_gate

    record = run.record
    if not isinstance(record, GateRecord) or not record.gate_passed or record.staging_server is None:
        return None
    config = ctx.folder.config()
    staging = ctx.ops.endpoints.status(config.deploy_environment(STAGING).endpoint)
    production = ctx.ops.endpoints.status(config.deploy_environment(PRODUCTION).endpoint)
    if any(status is None or status.status != IN_SERVICE for status in (staging, production)):
        return None
    if not (record.staging_package_id == staging.package_id == production.package_id
            and record.staging_server == staging.server_id):
        return None
    newest = latest_gate(ctx.ops.history.events(config.name), record.staging_package_id)
    if newest is None or newest.action != GATE_PASSED:
        return None
    return (f"production serves v{record.staging_version}, the package staging serves; its newest gate passed at "
            f"{newest.at} against the staging server still running ({staging.server_id})")


#: What must still be true for a previous run's result to be reused: a provider answers with what still holds,
#: in words for the reused run's reason, or None when it no longer does.
HOLDS: dict[str, Callable[[NotebookRun, StageContext], str | None]] = {
    "registered": _registered,
    "serving": _serving,
    "gated": _gated,
}


def run_fingerprint(notebook: Notebook, path: Path, parameters: dict[str, Any], ctx: StageContext) -> str | None:
    """The fingerprint of running ``notebook`` with ``parameters`` now, or None when it must always run."""
    if notebook.reuse != "fingerprint":
        return None
    inputs = {name: INPUTS[name](ctx, parameters) for name in notebook.inputs}
    if any(value is _ALWAYS for value in inputs.values()):
        return None
    return fingerprint(path, parameters, inputs)


@dataclass(frozen=True)
class Reuse:
    """A previous run that stands in for running a notebook now, and why (what the front page shows)."""

    run: NotebookRun
    reason: str


def reusable(notebook: Notebook, key: str | None, ctx: StageContext, variant: str = "") -> Reuse | None:
    """The previous run of ``notebook`` (with ``variant``) that can stand in for running it with fingerprint ``key``."""
    from modelops.errors import ModelOpsError

    previous = ctx.artifacts.previous(ctx.folder.name, notebook.name, variant)
    if key is None or previous is None or previous.fingerprint != key or previous.status not in ("passed", "skipped"):
        return None
    if not previous.ipynb or not (ctx.artifacts.root / previous.ipynb).exists():
        return None
    try:
        holds = "" if notebook.holds is None else HOLDS[notebook.holds](previous, ctx)
    except ModelOpsError:
        return None
    if holds is None:
        return None
    unchanged = f"up to date: inputs unchanged since {previous.started_at}"
    return Reuse(previous, f"{unchanged}; {holds}" if holds else unchanged)


def gathered(ctx: StageContext, parameters: dict[str, Any]):
    """The dataset gathering would write with these parameters, if it is already complete (else None).

    When the gather runs in a SageMaker Processing job (model.yml's data.processing), the source is not read
    here to learn its sha256 (it may be far larger than this job): only a sha256 pinned in model.yml names the
    dataset; without one the job runs, and finds the dataset complete itself.
    """
    from modelops.data.datasets import find_dataset, gathered_dataset
    from modelops.errors import ModelOpsError

    try:
        config = ctx.folder.config()
        seed, output = parameters.get("split_seed"), parameters.get("output")
        if ctx.backend == "sagemaker" and config.data.processing is not None:
            if parameters.get("source") or not config.data.sha256:
                return None
            return find_dataset(ctx.ops.store, config, config.data.sha256, seed, output)
        return gathered_dataset(ctx.ops.store, config, source=parameters.get("source"), seed=seed, output=output)
    except ModelOpsError:
        return None  # let the gather notebook run and show what is wrong
