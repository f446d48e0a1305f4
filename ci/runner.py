"""The runner: execute a model's notebooks for a stage with papermill and leave reviewable artifacts."""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci import freshness
from ci.artifacts import Artifacts, NotebookRun, export_html, extract_figures, run_name
from ci.freshness import StageContext
from ci.kernels import KERNEL_NAME, KernelsAhead, kernel_manager_class, prestarted_engine
from ci.models import ModelFolder
from ci.remote import remote_for
from ci.stages import MODEL, NOTEBOOKS, SHARED, STAGES, Notebook
from ci.supplies import supplied
from modelops import settings
from modelops.backends import get_backend
from modelops.errors import ConfigError, ModelOpsError, NotebookFailed
from modelops.notebook.glue import read_scraps
from modelops.records import TrainRecord

log = logging.getLogger(__name__)

#: Parameter names that must never travel as papermill parameters: they would be written into the
#: executed notebook, which is stored as a CI artifact. Credentials come from the environment instead.
SECRET_NAME = re.compile(r"(secret|password|passwd|token|credential|access_key|session_key|api_key)", re.I)
SECRET_VALUE = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")

DEFAULT_CELL_TIMEOUT = 1800


@dataclass(frozen=True)
class Step:
    """One notebook of a stage: its row of the stages table, and where its file and working folder are."""

    notebook: Notebook
    path: Path
    cwd: Path

    @property
    def name(self) -> str:
        return self.notebook.name


def stage_steps(folder: ModelFolder, stage: str) -> list[Step]:
    """The notebooks a stage runs for a model, in order.

    Raises:
        ConfigError: unknown stage, or a notebook the stage needs is missing.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}. Fix: use one of {sorted(STAGES)}.")
    steps = []
    for name in STAGES[stage].notebooks:
        notebook = NOTEBOOKS[name]
        if notebook.home == SHARED:
            path = folder.path.parent / "notebooks" / f"{name}.ipynb"
            hint = "it is a shared notebook of the project"
        else:
            path = folder.notebook(name)
            hint = f"model notebooks are generated from notebooks/templates/{name}.ipynb: python -m ci notebooks sync"
        if not path.is_file():
            raise ConfigError(f"{path} is missing, and stage {stage!r} runs it. Fix: restore it ({hint}).")
        steps.append(Step(notebook, path, folder.path if notebook.home == MODEL else path.parent))
    return steps


def parse_parameters(pairs: list[tuple[str, str]] | tuple = ()) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs to typed values (YAML scalars: 7 -> int, true -> bool, null -> None).

    Raises:
        ConfigError: a parameter looks like a secret (by name or value).
    """
    import yaml

    parameters = {}
    for name, text in pairs:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if isinstance(value, (dict, list)) and not text.strip().startswith(("{", "[")):
            value = text
        parameters[name] = value
    check_no_secrets(parameters)
    return parameters


def check_no_secrets(parameters: dict[str, Any]) -> None:
    """Refuse parameters that carry credentials: papermill writes parameters into the executed notebook."""
    for name, value in parameters.items():
        if SECRET_NAME.search(name) or SECRET_VALUE.search(str(value)):
            raise ConfigError(
                f"parameter {name!r} looks like a credential, and papermill would write it into the executed "
                f"notebook (a CI artifact). Fix: pass credentials through the environment (AWS_* variables, a "
                f"profile or an OIDC role), never as -p parameters."
            )


def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters a notebook declares in its cell tagged ``parameters``: name -> ``{"name", "default"}``, the
    default as written (what papermill's ``inspect_notebook`` says of them; a test holds the two together).

    Read with Python's own parser rather than papermill's, whose import (pyarrow, boto3) was most of what a
    rerun that executes nothing spent.

    Raises:
        ConfigError: the notebook has no such cell (papermill would silently add one at the top), or the cell is
            not valid Python.
    """
    import ast

    import nbformat

    notebook = nbformat.read(path, as_version=4)
    cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        raise ConfigError(f"{path} has no cell tagged 'parameters'. Fix: tag its first code cell 'parameters' "
                          f"(Jupyter: View > Cell Toolbar > Tags) so the runner can set its values.")
    try:
        body = ast.parse(cell.source).body
    except SyntaxError as exc:
        raise ConfigError(f"{path}: its parameters cell is not valid Python ({exc.msg}, line {exc.lineno}). Fix: "
                          f"correct it so that it runs as it stands.") from exc
    declared = {}
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        for target in targets:
            if isinstance(target, ast.Name):
                declared[target.id] = {"name": target.id, "default": ast.get_source_segment(cell.source, node.value)}
    return declared


def check_kernel() -> None:
    """Refuse to start when the kernel the notebooks declare is not installed (it comes with the package)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel as exc:
        raise ConfigError(
            f"the Jupyter kernel {KERNEL_NAME!r} that the notebooks declare is not installed in this environment. "
            f"Fix: pip install -e . (it installs the kernel), or python -m ipykernel install --sys-prefix "
            f"--name {KERNEL_NAME}."
        ) from exc


def run_stage(
    folder: ModelFolder,
    stage: str,
    *,
    backend: str | None = None,
    parameters: dict[str, Any] | None = None,
    artifacts: Artifacts,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    force: bool = False,
) -> list[NotebookRun]:
    """Execute a stage's notebooks for one model, stopping at the first failure.

    Args:
        folder: the model folder.
        stage: ``gather``, ``train``, ``deploy`` or ``all``.
        backend: passed to every notebook as its ``backend`` parameter (default ``$MODELOPS_BACKEND``/local).
        parameters: extra papermill parameters, each given to the notebooks of the stage that declare it.
        artifacts: where executed notebooks, HTML, metrics and the run log go.
        cell_timeout: seconds a single cell may run.
        force: run every notebook, even those whose inputs did not change (see ci.freshness).

    Returns:
        The runs, in order (a skipped run says why).

    Raises:
        ConfigError: a parameter no notebook of the stage declares, a secret-looking parameter, a missing kernel.
        NotebookFailed: a notebook failed; its executed copy and HTML are in the artifacts.
    """
    parameters = dict(parameters or {})
    check_no_secrets(parameters)
    folder.config()  # a broken model.yml fails here, before any kernel starts
    steps = stage_steps(folder, stage)
    declared = {step.name: declared_parameters(step.path) for step in steps}
    unknown = [name for name in parameters if not any(name in d for d in declared.values())]
    if unknown:
        listing = "; ".join(f"{step}: {', '.join(d) or '(none)'}" for step, d in declared.items())
        raise ConfigError(f"parameter(s) {unknown} are declared by no notebook of stage {stage!r} "
                          f"({listing}). Fix: correct the name.")
    contradicting = {k: v for k, v in parameters.items() if k in STAGES[stage].parameters
                     and v != STAGES[stage].parameters[k]}
    if contradicting:
        raise ConfigError(f"stage {stage!r} sets {STAGES[stage].parameters}, and -p says {contradicting}. Fix: leave "
                          f"those out, or run the stage that does what you want (one of {sorted(STAGES)}).")
    parameters = {**STAGES[stage].parameters, **parameters}
    backend = settings.backend_name(backend)
    pin_environment()
    ctx = StageContext(folder, stage, backend, get_backend(backend), artifacts, parameters, runs=[])
    failure: NotebookFailed | None = None
    # The next notebook's kernel boots while this one runs (ci.kernels); one not taken is shut down on the way out.
    with KernelsAhead() as kernels:
        for index, step in enumerate(steps):
            if failure is not None and failure.cause not in step.notebook.runs_after:
                break
            given = {**supplied(step.notebook.supplies, ctx, step.name), **parameters}
            passed = {k: v for k, v in given.items() if k in declared[step.name]}
            variant = run_variant(step.notebook, passed, declared[step.name])
            always = force or step.name in STAGES[stage].always_runs
            if step.notebook.reuse == "dataset" and step.name not in STAGES[stage].always_runs:
                dataset = freshness.gathered(ctx, passed)
                if dataset is not None:
                    ctx.runs.append(_skip(folder.name, step, artifacts, f"dataset {dataset.dataset_id} already "
                                          f"gathered for data sha256 {dataset.raw_sha256[:12]}",
                                          scraps=dataset.record.to_scraps()))
                    continue
            # Forced runs still record their fingerprint: otherwise the next unchanged run could not reuse them
            # and would run (and register) everything again.
            key = freshness.run_fingerprint(step.notebook, step.path, passed, ctx)
            reused = None if always else freshness.reusable(step.notebook, key, ctx, variant)
            if reused:
                ctx.runs.append(_skip(folder.name, step, artifacts, reused.reason, scraps=reused.run.scraps,
                                      previous=reused.run, variant=variant))
                continue
            try:
                following = steps[index + 1] if index + 1 < len(steps) else None
                ctx.runs.append(execute(folder.name, step, passed, artifacts, cell_timeout=cell_timeout,
                                        fingerprint=key, variant=variant, kernels=kernels, following=following,
                                        remote=remote_for(step, ctx)))
            except NotebookFailed as exc:
                ctx.runs.append(artifacts.previous(folder.name, step.name, variant))
                failure = failure or exc
    if failure is not None:
        raise failure
    return ctx.runs


def run_variant(notebook: Notebook, passed: dict[str, Any], declared: dict[str, Any]) -> str:
    """The value of the notebook's keyed_by parameter in this run (as given, else the notebook's default)."""
    if notebook.keyed_by is None:
        return ""
    if notebook.keyed_by in passed:
        return str(passed[notebook.keyed_by])
    import ast

    default = (declared.get(notebook.keyed_by) or {}).get("default")
    try:
        return str(ast.literal_eval(default))
    except (ValueError, SyntaxError):
        return str(default or "")


def _skip(model: str, step: Step, artifacts: Artifacts, reason: str, scraps: dict | None = None,
          previous: NotebookRun | None = None, variant: str = "") -> NotebookRun:
    run = NotebookRun(model=model, notebook=step.name, status="skipped", reason=reason, scraps=scraps or {},
                      variant=variant)
    if previous is not None:  # keep pointing at the executed notebook that is still current
        run.ipynb, run.html, run.fingerprint, run.parameters, run.figures = (
            previous.ipynb, previous.html, previous.fingerprint, previous.parameters, previous.figures)
    artifacts.add_run(run)
    return run


def pin_environment() -> None:
    """Make the folders kernels inherit absolute: a kernel runs in the model folder, not where we started.

    Pins the local backend's home (so every notebook of a run shares one registry and store) and turns a
    relative ``MODELOPS_DATA_DIR`` into an absolute one.
    """
    os.environ[settings.HOME_ENV] = str(settings.modelops_home())
    data_dir = settings.data_dir()
    if data_dir is not None:
        os.environ[settings.DATA_DIR_ENV] = str(data_dir)


def execute(model: str, step: Step, parameters: dict[str, Any], artifacts: Artifacts, *,
            cell_timeout: int = DEFAULT_CELL_TIMEOUT, fingerprint: str | None = None, variant: str = "",
            kernels: KernelsAhead | None = None, following: Step | None = None, remote=None) -> NotebookRun:
    """Execute one notebook with papermill; always leave the executed copy and its HTML.

    With ``kernels``, the notebook runs on the kernel started for it ahead, if it fits (ci.kernels), and the
    kernel of ``following``, the notebook after it, starts while it runs. With ``remote`` (ci.remote), it runs
    in a SageMaker job instead, which hands back the executed notebook.

    Raises:
        ConfigError: the kernel the notebooks declare is not installed (checked here, not when a stage starts:
            a stage whose notebooks are all reused needs none).
        NotebookFailed: naming the notebook, the cell and the error, and where the executed copy is.
    """
    if remote is None:
        check_kernel()
    name = run_name(step.name, variant)
    output = artifacts.notebook_path(model, name, ".ipynb")
    html = artifacts.notebook_path(model, name, ".html")
    output.parent.mkdir(parents=True, exist_ok=True)
    for stale in (output, html):
        stale.unlink(missing_ok=True)
    run = NotebookRun(model=model, notebook=step.name, status="running", parameters=parameters,
                      fingerprint=fingerprint, variant=variant)
    # Logged before anything runs: if this process is killed mid-notebook, the log says "running", never the
    # previous run's "passed" next to a half-written notebook that a later run could trust.
    artifacts.add_run(run)
    pin_environment()
    started = time.monotonic()
    if remote is not None:
        try:
            error = remote(parameters, output)
        except ModelOpsError as exc:  # no job, or one that never ended: recorded as this run's failure
            error = {"cell": None, "ename": type(exc).__name__, "evalue": str(exc), "source": ""}
    else:
        error = _papermill(step, parameters, output, cell_timeout, kernels, following)
    run.duration = round(time.monotonic() - started, 2)
    if output.exists():
        run.ipynb = artifacts.relative(output)
        run.html = artifacts.relative(export_html(output, html))
        figures = extract_figures(output, artifacts.model_dir(model) / "figures", name)
        run.figures = [[name, artifacts.relative(path)] for name, path in figures.items()]
        # A failed notebook's scraps are kept too: what it handed on before failing (e.g. train_register's
        # evaluation before a failed quality gate) is what the review of that run reads.
        run.scraps = read_scraps(output)
    run.status = "failed" if error else "passed"
    run.error = error
    artifacts.add_run(run)
    if error:
        where = (f"cell [{error['cell']}] (`{error['source']}`)" if error["cell"] else "its SageMaker job"
                 if remote is not None else "the kernel")
        raise NotebookFailed(
            f"{model}/{name}.ipynb failed at {where}: {error['ename']}: {error['evalue'].rstrip('.')}. "
            f"Executed notebook: {html if run.html else output} (the failing cell is shown there).",
            cause=error["ename"],
        )
    return run


def _papermill(step: Step, parameters: dict[str, Any], output: Path, cell_timeout: int,
               kernels: KernelsAhead | None, following: Step | None) -> dict | None:
    """Run the notebook in a local kernel with papermill; the failed cell's error, or None."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    kernel = kernels.take(step.cwd) if kernels else None
    if kernels and following:
        kernels.start(following.cwd)
    error = None
    try:
        papermill.execute_notebook(
            # The kernel's working folder goes to nbclient as resources, not papermill's cwd=: that one is an
            # os.chdir of this whole process, which breaks notebooks run from parallel threads.
            str(step.path), str(output), parameters=parameters, resources={"metadata": {"path": str(step.cwd)}},
            kernel_name=KERNEL_NAME,
            progress_bar=False, log_output=False, request_save_on_cell_execute=True, execution_timeout=cell_timeout,
            kernel_manager_class=kernel_manager_class(),
            **({"km": kernel, "engine_name": prestarted_engine()} if kernel is not None else {}),
        )
    except PapermillExecutionError as exc:
        error = {"cell": exc.exec_count, "ename": exc.ename, "evalue": _first_line(exc.evalue),
                 "source": _first_line(exc.source)}
    except Exception as exc:  # the kernel died, timed out or could not start: papermill saved what ran
        error = {"cell": None, "ename": type(exc).__name__, "evalue": _describe_crash(exc), "source": ""}
    finally:
        if kernel is not None:
            kernels.release(kernel)
    return error


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines) == 1 else lines[0] + " ..."


def _describe_crash(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "DeadKernelError":
        return ("the kernel died while running the notebook (out of memory, a crash in native code, or it was "
                "killed). The notebook as far as it ran was saved.")
    if "Timeout" in name:
        return f"a cell ran longer than the cell timeout ({exc})."
    return str(exc) or name


def write_registered_version(runs: list[NotebookRun], path: Path) -> int:
    """Write the version the stage's training registered (or found up to date) to ``path``.

    Raises:
        ConfigError: no run registered a version (the stage was not ``train``/``all``).
    """
    versions = [run.record.version for run in runs
                if isinstance(run.record, TrainRecord) and run.record.version is not None]
    if not versions:
        raise ConfigError("--version-file needs a stage that runs train_register (train or all). Fix: pass "
                          "--stage train.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{versions[-1]}\n")
    return int(versions[-1])


__all__ = ["check_kernel", "declared_parameters", "execute", "parse_parameters", "run_stage",
           "write_registered_version"]
