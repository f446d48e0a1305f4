"""The parameters the runner itself hands a notebook, by the names the stages table lists under ``supplies``.

Each provider reads the stage run so far (the records earlier notebooks handed on), never an executed
notebook's raw scraps. A provider's value goes to a notebook only if the notebook declares that parameter,
and a value the user passed with ``-p`` wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci.freshness import StageContext, gathered
from modelops.records import GatherRecord, TrainRecord


def _backend(ctx: StageContext, notebook: str) -> Any:
    return ctx.backend


def _notebook_artifact(ctx: StageContext, notebook: str) -> Any:
    """Where the executed copy of this notebook is kept, relative to the artifacts folder (recorded as lineage)."""
    return ctx.artifacts.relative(ctx.artifacts.notebook_path(ctx.folder.name, notebook, ".html"))


def _dataset(ctx: StageContext, notebook: str) -> Any:
    """The manifest of the dataset this stage gathered (or found gathered), else of the data as it is now."""
    found = ctx.latest(GatherRecord)
    if found is not None and found.manifest_uri:
        return found.manifest_uri
    dataset = gathered(ctx, ctx.parameters)
    return dataset.manifest_uri if dataset else None


def _model_dir(ctx: StageContext, notebook: str) -> Any:
    return str(ctx.folder.path)


def _challenger(ctx: StageContext, notebook: str) -> Any:
    """The version this stage trained and registered (None: the notebook's own default)."""
    trained = ctx.latest(TrainRecord)
    return trained.version if trained else None


def _evaluation(ctx: StageContext, notebook: str) -> Any:
    """The evaluation report of a model this stage trained but did not register (a failed quality gate)."""
    trained = ctx.latest(TrainRecord)
    return trained.evaluation_uri if trained and not trained.registered else None


SUPPLIES: dict[str, Callable[[StageContext, str], Any]] = {
    "backend": _backend,
    "notebook_artifact": _notebook_artifact,
    "dataset": _dataset,
    "model_dir": _model_dir,
    "challenger": _challenger,
    "evaluation": _evaluation,
}


def supplied(names: tuple[str, ...], ctx: StageContext, notebook: str) -> dict[str, Any]:
    """The values of the providers ``names`` for ``notebook`` in this stage run."""
    return {name: SUPPLIES[name](ctx, notebook) for name in names}
