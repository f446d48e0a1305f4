"""The command line: `python -m ci <command>`. Each command is a few lines calling one library function.

Exit codes: 0 success; 1 an error of this project (one line on stderr); 2 bad usage or configuration;
3 a quality gate failed; 4 no approved package for the revision; 5 an endpoint failed; 6 a notebook failed.
Unexpected errors keep their traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from modelops.errors import ModelOpsError
from modelops.settings import project_root


class _Group(click.Group):
    """Print the project's own errors as one red line and exit with their code; keep tracebacks otherwise."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ModelOpsError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
def main() -> None:
    """Notebook-first ML delivery: run, review, approve and deploy the models of this repository."""


def _artifacts_option(function):
    return click.option("--artifacts", "artifacts_dir", default=None, type=click.Path(file_okay=False),
                        help="Artifacts folder (default: artifacts/ at the project root).")(function)


def _artifacts(path: str | None):
    from ci.artifacts import Artifacts

    return Artifacts(Path(path) if path else project_root() / "artifacts")


@main.command()
@click.argument("model_dir")
@click.option("--stage", type=click.Choice(["gather", "train", "deploy", "all"]), required=True)
@click.option("--backend", default=None, help="local | sagemaker (default: $MODELOPS_BACKEND or local).")
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A notebook parameter (repeatable); values are read as YAML scalars.")
@click.option("--timeout", "cell_timeout", default=1800, show_default=True, help="Seconds a single cell may run.")
@_artifacts_option
def run(model_dir, stage, backend, parameters, cell_timeout, artifacts_dir) -> None:
    """Execute MODEL_DIR's notebooks for STAGE with papermill and store the artifacts."""
    from ci.models import resolve_model_dir
    from ci.runner import parse_parameters, run_stage

    artifacts = _artifacts(artifacts_dir)
    runs = run_stage(resolve_model_dir(model_dir), stage, backend=backend, parameters=parse_parameters(parameters),
                     artifacts=artifacts, cell_timeout=cell_timeout)
    for notebook_run in runs:
        metrics = ", ".join(f"{k}={v}" for k, v in notebook_run.headline.items())
        click.echo(f"{notebook_run.model}/{notebook_run.notebook}: {notebook_run.status} "
                   f"({notebook_run.duration:.1f}s) {metrics}")
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")


@main.command()
@click.option("--backend", default=None, help="local | sagemaker (default: $MODELOPS_BACKEND or local).")
@_artifacts_option
def pipeline(backend, artifacts_dir) -> None:
    """Run the pipeline for every model folder of the project and print a summary table."""
    from ci.models import discover_models
    from ci.pipeline import run_pipeline

    artifacts = _artifacts(artifacts_dir)
    outcomes = run_pipeline(discover_models(), backend=backend, artifacts=artifacts)
    for outcome in outcomes:
        for notebook_run in outcome.runs:
            metrics = ", ".join(f"{k}={v}" for k, v in notebook_run.headline.items())
            click.echo(f"{outcome.model:<16} {notebook_run.notebook:<16} {notebook_run.status:<7} {metrics}")
        if outcome.error:
            click.secho(f"{outcome.model:<16} failed: {outcome.error}", fg="red", err=True)
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")
    if not all(o.ok for o in outcomes):
        sys.exit(1)
