"""``python -m ci monitor``: the monitor notebook on the window's traffic, or (``--schedule``) a Model Monitor
schedule on the sagemaker backend. Attached to ``ci.cli.main``."""

from __future__ import annotations

from pathlib import Path

import click

from ci import options, render


@click.command()
@click.argument("model_dir")
@click.option("--since", default="24h", show_default=True,
              help="The window's start: a duration back from now (30m, 24h, 7d), an ISO 8601 time, or all. On "
                   "SageMaker Model Monitor at most 24 hours.")
@click.option("--until", default=None, help="The window's end: an ISO 8601 time (default: now).")
@click.option("--labels", "labels_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Ground truth keyed by event id (Model Monitor's JSON lines, or a CSV with event_id,label): "
                   "live metrics against the quality gates (on sagemaker: Model Monitor's model-quality job).")
@click.option("--endpoint", default=None, help="Another endpoint of the model (default: the one named after it).")
@click.option("--version", type=int, default=None,
              help="Check against this version's baseline (default: the version the endpoint serves).")
@click.option("--engine", type=click.Choice(["model-monitor", "notebook"]), default=None,
              help="Who checks the window: SageMaker Model Monitor's jobs (the sagemaker backend's default) or the "
                   "notebook's kernel, reading the capture (the local backend's only one).")
@click.option("--schedule", type=click.Choice(["hourly", "daily"]), default=None,
              help="Instead of checking now: create or update the endpoint's Model Monitor data-quality schedule "
                   "(sagemaker backend).")
@options.backend
@options.artifacts
def monitor(model_dir, since, until, labels_file, endpoint, version, engine, schedule, backend, artifacts_dir) -> None:
    """Check MODEL_DIR's captured endpoint traffic against its training baseline (runs the monitor notebook).

    Exits 7 when a constraint is violated; the executed notebook and constraint_violations.json say which.
    """
    from ci.artifacts import Artifacts
    from ci.models import resolve_model_dir
    from ci.runner import run_stage
    from modelops.errors import NotebookFailed
    from modelops.settings import project_root

    if schedule:
        click.echo(schedule_monitoring(model_dir, schedule, endpoint=endpoint, version=version, backend=backend))
        return
    parameters = {"since": since, "until": until, "endpoint": endpoint, "version": version, "engine": engine,
                  "labels": str(Path(labels_file).resolve()) if labels_file else None}
    artifacts = Artifacts(Path(artifacts_dir) if artifacts_dir else project_root() / "artifacts")
    try:
        [run] = run_stage(resolve_model_dir(model_dir), "monitor", backend=backend,
                          parameters={k: v for k, v in parameters.items() if v is not None}, artifacts=artifacts)
    except NotebookFailed as exc:
        failed = artifacts.previous(resolve_model_dir(model_dir).name, "monitor")
        if failed is not None and failed.record is not None:
            click.echo(render.monitor_summary(failed.record), err=True)
        raise exc from None
    click.echo(render.monitor_summary(run.record))
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")


def schedule_monitoring(model_dir: str, frequency: str, *, endpoint: str | None, version: int | None,
                        backend: str | None) -> str:
    """Create or update the endpoint's Model Monitor schedule against the served version's baseline; its name.

    Raises:
        ConfigError: the backend has no Model Monitor (local: CircleCI's scheduled pipeline runs ci monitor).
    """
    from ci.models import resolve_model_dir
    from ci.runner import pin_environment
    from modelops.backends import get_backend
    from modelops.errors import ConfigError
    from modelops.monitoring.traffic import served_model

    pin_environment()
    config, ops = resolve_model_dir(model_dir).config(), get_backend(backend)
    analyzer = getattr(ops, "model_monitor", None)
    if analyzer is None:
        raise ConfigError(f"--schedule creates a SageMaker Model Monitor schedule, and the {ops.name} backend has "
                          f"none. Fix: pass --backend sagemaker; locally, run ci monitor from a scheduler (CircleCI's "
                          f"scheduled pipeline does, daily).")
    served = served_model(ops, config, endpoint=endpoint, version=version)
    name = analyzer.schedule(config, served, frequency, log=lambda line: click.echo(line, err=True))
    return f"monitoring schedule {name}: {frequency}; each run's reports under the model's model-monitor/ folder"
