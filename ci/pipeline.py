"""The local pipeline: what CI runs, for every model (or the changed ones), on one machine.

For each model: the train stage (gather if needed, train_register, review), the approval step, then the
deploy stage and a smoke request through the endpoint. Approval is ``auto`` (approve a version whose review
verdict is APPROVE), ``prompt`` (ask), or ``stop`` (print the approve command and go no further).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ci.artifacts import Artifacts, NotebookRun
from ci.models import ModelFolder
from ci.runner import pin_environment, run_stage
from modelops.errors import ModelOpsError
from modelops.review import PRIMARY_METRIC


@dataclass
class ModelOutcome:
    """What the pipeline did for one model."""

    model: str
    runs: list[NotebookRun] = field(default_factory=list)
    version: int | None = None
    metric: tuple[str, float] | None = None
    endpoint_url: str | None = None
    smoke_prediction: float | None = None
    stopped: str | None = None  # why the pipeline stopped early for this model without an error
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


def run_pipeline(models: list[ModelFolder], *, backend: str | None, artifacts: Artifacts, approval: str = "stop",
                 approver: str = "local-pipeline", deploy: bool = True, confirm=None, log=print) -> list[ModelOutcome]:
    """Run the whole flow for each model; a failing model does not stop the others.

    Args:
        models: the model folders to run.
        backend: backend name passed to every notebook.
        artifacts: where executed notebooks and reports go.
        approval: ``auto``, ``prompt`` (calls ``confirm(question) -> bool``) or ``stop``.
        approver: recorded as who approved (``auto``/``prompt``).
        deploy: run the deploy stage after approval.
        log: receives progress lines.

    Returns:
        One outcome per model.
    """
    outcomes = []
    for folder in models:
        outcome = ModelOutcome(folder.name)
        try:
            _run_model(folder, outcome, backend=backend, artifacts=artifacts, approval=approval, approver=approver,
                       deploy=deploy, confirm=confirm, log=log)
        except ModelOpsError as exc:
            outcome.error, outcome.exit_code = str(exc), exc.exit_code
        outcomes.append(outcome)
    return outcomes


def _run_model(folder: ModelFolder, outcome: ModelOutcome, *, backend, artifacts, approval, approver, deploy, confirm,
               log) -> None:
    from modelops.backends import get_backend

    config = folder.config()
    log(f"{folder.name}: train stage")
    outcome.runs += run_stage(folder, "train", backend=backend, artifacts=artifacts)
    metrics = artifacts.metrics(folder.name)
    outcome.version = metrics["version"]
    primary = PRIMARY_METRIC[config.problem_type]
    outcome.metric = (primary, metrics[primary])
    verdict = metrics.get("verdict_line", "")
    log(f"{folder.name}: registered v{outcome.version} ({primary} {metrics[primary]:.4g}); review: {verdict}")
    pin_environment()
    registry = get_backend(backend).registry
    command = f"python -m ci approve {folder.name} --version {outcome.version} --by NAME"
    if approval == "auto" and metrics.get("verdict") != "APPROVE":
        outcome.stopped = f"not approved automatically (review: {verdict}); to approve anyway: {command}"
        return
    if approval == "prompt" and not confirm(f"Approve {config.name} v{outcome.version}? ({verdict})"):
        outcome.stopped = f"not approved; later: {command}"
        return
    if approval == "stop":
        outcome.stopped = f"awaiting approval: {command}"
        return
    registry.approve(config.name, outcome.version, by=approver, note=f"local pipeline ({approval}): {verdict}")
    log(f"{folder.name}: v{outcome.version} approved by {approver}")
    if not deploy:
        return
    log(f"{folder.name}: deploy stage")
    outcome.runs += run_stage(folder, "deploy", backend=backend, artifacts=artifacts)
    deployed = artifacts.metrics(folder.name)
    outcome.endpoint_url = deployed.get("endpoint_url")
    outcome.smoke_prediction = smoke_invoke(get_backend(backend), config)
    log(f"{folder.name}: v{deployed['version']} serving at {outcome.endpoint_url}; smoke request answered "
        f"{outcome.smoke_prediction:.4g}")


def smoke_invoke(ops, config) -> float:
    """One test row through the endpoint, as a client would send it; returns the prediction."""
    from modelops.datasets import load_dataset, read_split
    from modelops.prepare import features_and_target
    from modelops.serving.protocol import read_predictions, to_csv

    features, _ = features_and_target(read_split(ops.store, load_dataset(ops.store, config), "test").head(1))
    [prediction] = read_predictions(ops.endpoints.invoke(config.name, to_csv(features)))
    return float(prediction)


def summary_table(outcomes: list[ModelOutcome]) -> str:
    """model | version | metric | endpoint URL, one line per model."""
    lines = [f"{'model':<16} {'version':>7}  {'metric':<16} {'endpoint':<44} note"]
    for o in outcomes:
        metric = f"{o.metric[0]} {o.metric[1]:.4g}" if o.metric else "-"
        note = o.error.split(". ")[0] if o.error else (o.stopped or "")
        lines.append(f"{o.model:<16} {o.version or '-':>7}  {metric:<16} {o.endpoint_url or '-':<44} {note}")
    return "\n".join(lines)
