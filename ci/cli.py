"""The command line: `python -m ci <command>`. Each command is a few lines calling one library function.

Exit codes: 0 success; 1 an error of this project (one line on stderr); 2 bad usage or configuration;
3 a quality gate failed; 4 no approved package for the revision; 5 an endpoint failed; 6 a notebook failed.
Unexpected errors keep their traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ci.artifacts import fmt
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
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in notebook_run.headline.items())
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
            metrics = ", ".join(f"{k}={fmt(v)}" for k, v in notebook_run.headline.items())
            click.echo(f"{outcome.model:<16} {notebook_run.notebook:<16} {notebook_run.status:<7} {metrics}")
        if outcome.error:
            click.secho(f"{outcome.model:<16} failed: {outcome.error}", fg="red", err=True)
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")
    if not all(o.ok for o in outcomes):
        sys.exit(1)


def _model_and_backend(model_dir: str, backend: str | None):
    from ci.models import resolve_model_dir
    from ci.runner import pin_environment
    from modelops.backends import get_backend

    pin_environment()
    folder = resolve_model_dir(model_dir)
    return folder.config(), get_backend(backend)


def _status_command(action: str):
    @click.argument("model_dir")
    @click.option("--version", type=int, default=None,
                  help="Version to change (default: the newest pending version trained from this folder as it is).")
    @click.option("--by", required=True, help="Who decides (recorded in the registry).")
    @click.option("--note", default=None, help="Why (recorded in the registry).")
    @click.option("--backend", default=None, help="local | sagemaker (default: $MODELOPS_BACKEND or local).")
    def command(model_dir, version, by, note, backend) -> None:
        from modelops.packages import pending_for_folder

        config, ops = _model_and_backend(model_dir, backend)
        package = ops.registry.get(config.name, version) if version else pending_for_folder(ops.registry, config)
        changed = getattr(ops.registry, action)(config.name, package.version, by=by, note=note)
        click.echo(f"{changed.label}: {changed.status} by {changed.status_by} at {changed.status_at}")

    command.__doc__ = f"{action.capitalize()} a registered version of MODEL_DIR's model, recording who and why."
    return command


main.command("approve")(_status_command("approve"))
main.command("reject")(_status_command("reject"))


@main.command()
@click.argument("model_dir")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--backend", default=None, help="local | sagemaker (default: $MODELOPS_BACKEND or local).")
def registry(model_dir, as_json, backend) -> None:
    """List MODEL_DIR's registered versions with status, lineage and headline metrics."""
    import dataclasses
    import json

    config, ops = _model_and_backend(model_dir, backend)
    versions = ops.registry.versions(config.name)
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(p) for p in versions], indent=2, default=str))
        return
    if not versions:
        click.echo(f"{config.name}: no versions registered yet (python -m ci run {model_dir} --stage train)")
        return
    gated = [t.metric for t in config.quality]
    click.echo(f"{'version':>7}  {'status':<21} {'created':<20} {'branch':<16} {'tree':<8}  "
               + "  ".join(f"{m:>8}" for m in gated) + "  decided by")
    for p in versions:
        metrics = "  ".join(f"{fmt(p.metrics.get(m, '-')):>8}" for m in gated)
        click.echo(f"{p.version:>7}  {p.status:<21} {p.created_at[:19]:<20} {(p.lineage.branch or '-')[:16]:<16} "
                   f"{(p.lineage.tree_hash or '-')[:8]:<8}  {metrics}  {p.status_by or ''}")
