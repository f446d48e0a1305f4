"""The local pipeline: what CI runs, for every model (or the changed ones), on one machine.

For each model: the train stage (gather if needed, train_register, review), the approval step, the deploy
stage (staging, then the promotion gate against it), the promotion step (production gets the package staging
serves) and a smoke request through the endpoint. Both approvals are ``auto`` (approve a version whose review
verdict is APPROVE; promote a package that passed the gate), ``prompt`` (ask), or ``stop`` (print the command
that approves, or promotes, and go no further).

``plan_pipeline`` decides what CircleCI would run for a checkout: the models its path filtering selects,
train and approval on a branch, staging, the gate and promotion on main.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ci.artifacts import Artifacts, NotebookRun, latest
from ci.changes import ChangeSet, current_branch, project_changes
from ci.models import ModelFolder, discover_models
from ci.orb.mapping import BASE_REVISION
from ci.runner import run_stage
from modelops.backends.base import Backend
from modelops.config import PRODUCTION, STAGING, ModelConfig
from modelops.errors import ModelOpsError
from modelops.metrics import PRIMARY_METRIC
from modelops.records import DeployRecord, GateRecord, ReviewRecord, TrainRecord
from modelops.release.history import checkout_commit
from modelops.training.threads import TRAIN_THREADS_ENV, cpu_budget, fair_share


@dataclass
class ModelOutcome:
    """What the pipeline did for one model."""

    model: str
    runs: list[NotebookRun] = field(default_factory=list)
    version: int | None = None
    metric: tuple[str, float] | None = None
    endpoint_url: str | None = None  # production's when promoted, else staging's
    smoke_prediction: str | None = None
    deployed: dict[str, DeployRecord] = field(default_factory=dict)  # environment -> what its deploy handed on
    gate: GateRecord | None = None
    stopped: str | None = None  # why the pipeline stopped early for this model without an error
    error: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class PipelinePlan:
    """What a pipeline run does: which models, and which of train (with approval) and deploy."""

    models: list[ModelFolder]
    train: bool
    deploy: bool
    branch: str | None = None
    changes: ChangeSet | None = None

    def describe(self) -> str:
        names = ", ".join(m.name for m in self.models) or "no model"
        if self.branch is None:
            return f"whole flow for {names}: train, approve, deploy to staging, gate, promote"
        steps = " and ".join(step for step, on in (("train + approval", self.train),
                                                   ("deploy to staging + gate + promotion", self.deploy)) if on)
        selected = f"changed against {self.changes.base}" if self.changes else "all models"
        return f"branch {self.branch}: {steps or 'nothing'} for {names} ({selected})"


def plan_pipeline(root: Path, *, base: str | None = None, branch: str | None = None,
                  deploy: bool = True) -> PipelinePlan:
    """What CircleCI would run for this checkout.

    With neither ``base`` nor ``branch``: the whole flow (train, approve, deploy) for every model, as the
    README's first command runs it. Otherwise as CircleCI: the models path filtering selects against ``base``
    (every model without ``base``); on the base branch (main) deploy only, on any other branch train and
    approval only. ``branch`` defaults to ``$CIRCLE_BRANCH``, then the checked-out branch (a detached HEAD
    counts as a branch other than main).

    Raises:
        ChangeDetectionError: ``base`` does not resolve.
    """
    models = discover_models(root)
    if base is None and branch is None:
        return PipelinePlan(models, train=True, deploy=deploy)
    branch = branch or os.environ.get("CIRCLE_BRANCH") or current_branch(root) or "HEAD"
    changes = project_changes(root, base, branch=branch) if base else None
    if changes is not None:
        models = [m for m in models if m.name in changes.models]
    on_base = branch == (changes.base.removeprefix("origin/") if changes else BASE_REVISION)
    return PipelinePlan(models, train=not on_base, deploy=on_base and deploy, branch=branch, changes=changes)


def run_pipeline(models: list[ModelFolder], *, backend: str | None, artifacts: Artifacts, approval: str = "stop",
                 approver: str = "local-pipeline", deploy: bool = True, confirm=None, force: bool = False,
                 parallel: int | None = None, log=print, train: bool = True) -> list[ModelOutcome]:
    """Run the whole flow for each model; a failing model does not stop the others.

    Models train in parallel (their notebooks run in separate kernels), approvals are decided one model at
    a time in the calling thread (so a prompt can ask), then the approved ones deploy to staging and run the
    promotion gate in parallel; promotions are decided one at a time, then run in parallel.

    Args:
        models: the model folders to run.
        backend: backend name passed to every notebook.
        artifacts: where executed notebooks and reports go.
        approval: ``auto``, ``prompt`` (calls ``confirm(question) -> bool``) or ``stop``; for the training
            approval and for the promotion alike.
        approver: recorded as who approved and who promoted (``auto``/``prompt``).
        deploy: deploy to staging, run the gate and promote after approval.
        force: rerun notebooks whose inputs did not change.
        parallel: models run at once (default: one per CPU of the budget, at most the number of models); each
            training gets its fair share of the CPUs (``MODELOPS_TRAIN_THREADS``, unless set).
        log: receives progress lines.
        train: run the train stage and the approval step (False: deploy only, as CI does on main).

    Returns:
        One outcome per model, in the order given.
    """
    outcomes = [ModelOutcome(folder.name) for folder in models]
    workers = max(1, min(len(models), parallel or cpu_budget()))
    with ThreadPoolExecutor(workers) as pool:
        if train:
            with _training_threads(fair_share(workers)):
                list(pool.map(lambda pair: _guarded(pair[1], _train, pair[0], backend, artifacts, force, log),
                              zip(models, outcomes)))
            approved = [(folder, outcome) for folder, outcome in zip(models, outcomes)
                        if outcome.ok and _guarded(outcome, _approve, folder, backend, artifacts, approval, approver,
                                                   confirm, log)]
        else:
            approved = list(zip(models, outcomes))
        if not deploy:
            for _, outcome in approved:
                outcome.stopped = outcome.stopped or "approved; not deployed in this run"
            return outcomes
        list(pool.map(lambda pair: _guarded(pair[1], _deploy, pair[0], backend, artifacts, force, log), approved))
        promoted = [(folder, outcome) for folder, outcome in approved
                    if outcome.ok and _promotion_approved(folder, outcome, approval, confirm)]
        list(pool.map(lambda pair: _guarded(pair[1], _promote, pair[0], backend, artifacts, approver, log),
                      promoted))
        for folder, outcome in approved:
            if outcome.ok and outcome.endpoint_url:
                _guarded(outcome, _smoke, folder, backend, log)
    return outcomes


@contextmanager
def _training_threads(threads: int):
    """``MODELOPS_TRAIN_THREADS`` for the kernels started inside, unless the user set it: parallel trainings
    with every thread each would oversubscribe the cores (modelops.training.threads)."""
    if os.environ.get(TRAIN_THREADS_ENV):
        yield
        return
    os.environ[TRAIN_THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        os.environ.pop(TRAIN_THREADS_ENV, None)


def _guarded(outcome: ModelOutcome, step, folder: ModelFolder, *args):
    """Run one step for one model, recording the project's errors on its outcome instead of raising."""
    try:
        return step(folder, outcome, *args)
    except ModelOpsError as exc:
        outcome.error, outcome.exit_code = str(exc), exc.exit_code
        return None


def _train(folder: ModelFolder, outcome: ModelOutcome, backend, artifacts: Artifacts, force: bool, log) -> None:
    config = folder.config()
    log(f"{folder.name}: train stage")
    outcome.runs += run_stage(folder, "train", backend=backend, artifacts=artifacts, force=force)
    [trained_run] = [r for r in outcome.runs if isinstance(r.record, TrainRecord)]
    trained, review = trained_run.record, latest(outcome.runs, ReviewRecord)
    outcome.version = trained.version
    primary = PRIMARY_METRIC[config.problem_type]
    outcome.metric = (primary, trained.metrics[primary])
    skipped = " (unchanged, not retrained)" if trained_run.status == "skipped" else ""
    log(f"{folder.name}: v{outcome.version}{skipped} ({primary} {trained.metrics[primary]:.4g}); review: "
        f"{review.verdict_line if review else ''}")


def _approve(folder: ModelFolder, outcome: ModelOutcome, backend, artifacts: Artifacts, approval: str, approver: str,
             confirm, log) -> bool:
    from modelops.backends import get_backend
    from modelops.entities import APPROVED

    config = folder.config()
    review = latest(outcome.runs, ReviewRecord)
    verdict = review.verdict_line if review else "not reviewed"
    registry = get_backend(backend).registry
    if registry.get(config.name, outcome.version).status == APPROVED:
        return True
    command = f"python -m ci approve {folder.name} --version {outcome.version} --by NAME"
    if approval == "auto" and (review is None or review.verdict != "APPROVE"):
        outcome.stopped = f"not approved automatically (review: {verdict}); to approve anyway: {command}"
        return False
    if approval == "prompt" and not confirm(f"Approve {config.name} v{outcome.version}? ({verdict})"):
        outcome.stopped = f"not approved; later: {command}"
        return False
    if approval == "stop":
        outcome.stopped = f"awaiting approval: {command}"
        return False
    approved = registry.approve(config.name, outcome.version, by=approver,
                                note=f"local pipeline ({approval}): {verdict}", git_commit=checkout_commit(folder.path))
    trained = latest(outcome.runs, TrainRecord)
    artifacts.update_record(folder.name, replace(trained, status=approved.status, approved_by=approver))
    log(f"{folder.name}: v{outcome.version} approved by {approver}")
    return True


def _deploy(folder: ModelFolder, outcome: ModelOutcome, backend, artifacts: Artifacts, force: bool, log) -> None:
    log(f"{folder.name}: deploy stage (staging, then the promotion gate)")
    try:
        runs = run_stage(folder, "deploy", backend=backend, artifacts=artifacts, force=force)
    finally:
        _note_deploys(outcome, [r for r in artifacts.runs() if r.model == folder.name])
    outcome.runs += runs
    staging = outcome.deployed[STAGING]
    outcome.version = outcome.version or staging.version
    outcome.endpoint_url = staging.endpoint_url
    log(f"{folder.name}: v{staging.version} on staging at {staging.endpoint_url}; promotion gate passed "
        f"(p50 {outcome.gate.gate_p50_ms} ms, p99 {outcome.gate.gate_p99_ms} ms)")


def _note_deploys(outcome: ModelOutcome, runs: list[NotebookRun]) -> None:
    """What the model's deploy and gate runs handed on (a failed gate's figures too)."""
    for run in runs:
        record = run.record
        if isinstance(record, DeployRecord) and run.status != "failed":
            outcome.deployed[record.env_name] = record
        elif isinstance(record, GateRecord):
            outcome.gate = record


def _promotion_approved(folder: ModelFolder, outcome: ModelOutcome, approval: str, confirm) -> bool:
    command = f"python -m ci promote {folder.name} --by NAME"
    staging = outcome.deployed.get(STAGING)
    if outcome.deployed.get(PRODUCTION) and staging and outcome.deployed[PRODUCTION].version == staging.version:
        return True  # production already serves it: promoting again is a no-op that says so
    if approval == "prompt" and not confirm(f"Promote {folder.config().name} v{staging.version} to production? "
                                            f"(promotion gate passed: p99 {outcome.gate.gate_p99_ms} ms)"):
        outcome.stopped = f"not promoted; later: {command}"
        return False
    if approval == "stop":
        outcome.stopped = f"awaiting promotion: {command}"
        return False
    return True


def _promote(folder: ModelFolder, outcome: ModelOutcome, backend, artifacts: Artifacts, approver: str, log) -> None:
    log(f"{folder.name}: promotion to production")
    run = promote_model(folder, by=approver, backend=backend, artifacts=artifacts)
    outcome.runs.append(run)
    production = run.record
    outcome.deployed[PRODUCTION] = production
    outcome.endpoint_url = production.endpoint_url
    log(f"{folder.name}: v{production.version} promoted by {approver}: production serves it at "
        f"{production.endpoint_url}")


def promote_model(folder: ModelFolder, *, by: str, backend: str | None, artifacts: Artifacts,
                  timeout: float = 600) -> NotebookRun:
    """Put the package staging serves into production: the same package, by its id, after its gate passed.

    Runs the deploy notebook for production (its executed copy, ``deploy-production``, is the evidence: the
    production endpoint's answers and latency), which records the promotion in the model's history.

    Raises:
        PromotionRefused: staging serves nothing, or something not approved, or a package that did not pass the
            promotion gate; production is untouched.
        NotebookFailed: the production deploy failed (the previous version keeps serving).
    """
    from modelops.backends import get_backend
    from modelops.release.deploy import require_gate_passed
    from modelops.release.gate import staged_package

    config = folder.config()
    ops = get_backend(backend)
    package = staged_package(ops, config)
    require_gate_passed(ops, config, package)
    [run] = run_stage(folder, "production", backend=backend, artifacts=artifacts,
                      parameters={"version": package.version, "by": by, "timeout": timeout})
    return run


def _smoke(folder: ModelFolder, outcome: ModelOutcome, backend, log) -> None:
    from modelops.backends import get_backend

    env_name = PRODUCTION if PRODUCTION in outcome.deployed else STAGING
    outcome.smoke_prediction = smoke_invoke(get_backend(backend), folder.config(), env_name)
    log(f"{folder.name}: smoke request to {env_name} answered {outcome.smoke_prediction}")


def smoke_invoke(ops: Backend, config: ModelConfig, env_name: str = PRODUCTION) -> str:
    """One test row through ``env_name``'s endpoint, as a client would send it; returns the answer's text.

    The answer is what the container writes for this model's serving settings: a score (``19.63957977294922``),
    a row of class probabilities, or the ``SAGEMAKER_INFERENCE_OUTPUT`` fields (``0,0.13``).

    Raises:
        EndpointFailed: the endpoint answered with an error or with nothing.
    """
    from modelops.data.datasets import load_dataset, read_split
    from modelops.data.prepare import features_and_target
    from modelops.errors import EndpointFailed
    from modelops.serving.protocol import to_csv

    features, _ = features_and_target(read_split(ops.store, load_dataset(ops.store, config), "test").head(1))
    endpoint = config.deploy_environment(env_name).endpoint
    answer = ops.endpoints.invoke(endpoint, to_csv(features)).decode(errors="replace").strip()
    if not answer:
        raise EndpointFailed(f"endpoint {endpoint} answered a test row with an empty body. Fix: read the "
                             f"endpoint's log (python -m ci endpoints) and redeploy.")
    return answer


def summary_table(outcomes: list[ModelOutcome]) -> str:
    """model | version | metric | staging | promotion gate | production | endpoint URL, one line per model."""
    lines = [f"{'model':<16} {'version':>7}  {'metric':<16} {'staging':<8} {'gate':<26} {'production':<10} "
             f"{'endpoint':<44} note"]
    for o in outcomes:
        metric = f"{o.metric[0]} {o.metric[1]:.4g}" if o.metric else "-"
        note = o.error.split(". ")[0] if o.error else (o.stopped or "")
        staging, production = (f"v{o.deployed[env].version}" if env in o.deployed else "-"
                               for env in (STAGING, PRODUCTION))
        gate = "-"
        if o.gate is not None:
            verdict = "passed" if o.gate.gate_passed else "FAILED"
            gate = f"{verdict} (p99 {o.gate.gate_p99_ms:.1f} ms)" if o.gate.gate_p99_ms is not None else verdict
        lines.append(f"{o.model:<16} {o.version or '-':>7}  {metric:<16} {staging:<8} {gate:<26} {production:<10} "
                     f"{o.endpoint_url or '-':<44} {note}")
    return "\n".join(lines)
