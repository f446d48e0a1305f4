"""The local pipeline: what CI runs, for every model (or the changed ones), on one machine."""

from __future__ import annotations

from dataclasses import dataclass, field

from ci.artifacts import Artifacts, NotebookRun
from ci.models import ModelFolder
from ci.runner import run_stage
from modelops.errors import ModelOpsError


@dataclass
class ModelOutcome:
    """What the pipeline did for one model."""

    model: str
    runs: list[NotebookRun] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_pipeline(models: list[ModelFolder], *, backend: str | None, artifacts: Artifacts,
                 stages: tuple[str, ...] = ("train",)) -> list[ModelOutcome]:
    """Run the stages for each model; a failing model does not stop the others.

    Returns:
        One outcome per model (``ok`` False with the error for those that failed).
    """
    outcomes = []
    for folder in models:
        outcome = ModelOutcome(folder.name)
        try:
            for stage in stages:
                outcome.runs += run_stage(folder, stage, backend=backend, artifacts=artifacts)
        except ModelOpsError as exc:
            outcome.error = str(exc)
        outcomes.append(outcome)
    return outcomes
