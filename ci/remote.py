"""Notebooks that run as SageMaker jobs instead of in this process's kernel: the gather on a Processing job.

The runner asks ``remote_for`` whether a step runs elsewhere; if so, the callable it gets back runs the notebook
there and leaves the executed notebook at the path the runner gives, as papermill would have: the same page for
reviewers, the same scraps for the next notebook. Which notebooks may run so is a column of the stages table
(``Notebook.processing``); whether they do is model.yml's ``data.processing`` on the sagemaker backend.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import modelops
from ci.freshness import StageContext

#: What of the model folder travels to the job: its config, feature code and notebooks, not data or outputs.
FOLDER_FILES = ("*.yml", "*.yaml", "*.py", "*.ipynb", "*.csv.sha256")
#: A failed notebook's error, as the runner records it.
Error = dict[str, Any]


def remote_for(step, ctx: StageContext) -> Callable[[dict[str, Any], Path], Error | None] | None:
    """The job that runs ``step`` for this stage, or None when it runs in the local kernel.

    Prints, before a gather that stays in CI, a warning when its S3 source is too big for a CI job.
    """
    if not step.notebook.processing or ctx.backend != "sagemaker":
        return None
    config = ctx.folder.config()
    if config.data.processing is None:
        _warn_when_large(ctx, config)
        return None

    def run(parameters: dict[str, Any], output: Path) -> Error | None:
        return run_on_processing(ctx, step, parameters, output)

    return run


def run_on_processing(ctx: StageContext, step, parameters: dict[str, Any], output: Path) -> Error | None:
    """Run the step's notebook in a Processing job; write the executed notebook to ``output``; its error if any.

    Raises:
        ConfigError: no processing image is configured.
        ProcessingFailed: the job could not be created, or timed out.
    """
    from modelops.backends.sagemaker.aws import timestamped_name
    from modelops.backends.sagemaker.processing import NotebookJob

    config = ctx.folder.config()
    source = parameters.get("source") or config.data.source
    folder = ctx.folder.path
    job = NotebookJob(model=config.name, job_name=timestamped_name(config.name, "gather"),
                      files=project_files(folder), notebook=f"{folder.name}/{step.path.name}",
                      parameters={**parameters, "backend": "sagemaker"},
                      source_uri=source if str(source).startswith("s3://") else None)
    result = ctx.ops.processor.run(job, config.data.processing, log=lambda line: print(line, file=sys.stderr))
    if result.notebook is not None:
        output.write_bytes(result.notebook)
    if result.succeeded:
        return None
    return notebook_error(output) or {"cell": None, "ename": "ProcessingFailed", "evalue": result.describe_failure(),
                                      "source": ""}


def project_files(folder: Path) -> dict[str, bytes]:
    """The code the job needs, by archive path: the ``modelops`` package this process imports, and the folder."""
    package = Path(modelops.__file__).parent
    files = {f"modelops/{path.relative_to(package).as_posix()}": path.read_bytes()
             for path in sorted(package.rglob("*")) if path.is_file() and "__pycache__" not in path.parts
             and path.suffix in (".py", ".json", ".yml", ".typed")}
    for pattern in FOLDER_FILES:
        for path in sorted(folder.glob(pattern)):
            files[f"{folder.name}/{path.name}"] = path.read_bytes()
    return files


def notebook_error(path: Path) -> Error | None:
    """The first error an executed notebook holds (papermill keeps the failed cell's output), as the runner
    records a local failure."""
    if not path.is_file():
        return None
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                first = next((line for line in cell.source.splitlines() if line.strip()), "")
                return {"cell": cell.get("execution_count"), "ename": out.get("ename", "Error"),
                        "evalue": str(out.get("evalue", "")).strip().splitlines()[0] if out.get("evalue") else "",
                        "source": first}
    return None


def _warn_when_large(ctx: StageContext, config) -> None:
    from modelops.backends.sagemaker.processing import large_source_advice, source_size

    source = config.data.source
    advice = large_source_advice(source_size(ctx.ops.aws.client("s3"), source), source)
    if advice:
        print(f"warning: {advice}", file=sys.stderr)
