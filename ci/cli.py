"""The command line: `python -m ci <command>`. Each command is a few lines calling one library function.

Exit codes: 0 success; 1 an error of this project (one line on stderr); 2 bad usage or configuration;
3 a quality gate failed; 4 no approved package for the revision (or nothing promotable: staging serves nothing,
or something not approved or that did not pass the promotion gate); 5 an endpoint failed; 6 a notebook failed;
7 the monitor found a constraint violated (drift, schema, completeness, live quality); 8 the history's hash chain
is broken (``history --verify``); 9 the promotion gate failed.
Unexpected errors keep their traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ci import aws, monitor_command, options, render
from modelops.errors import ModelOpsError
from modelops.metrics import PROBLEM_METRICS
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


def _artifacts(path: str | None):
    from ci.artifacts import Artifacts

    return Artifacts(Path(path) if path else project_root() / "artifacts")


@main.command()
@click.argument("model_dir")
@click.option("--stage", type=click.Choice(options.stage_names()), required=True)
@options.backend
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="A notebook parameter (repeatable); values are read as YAML scalars.")
@click.option("--timeout", "cell_timeout", default=1800, show_default=True, help="Seconds a single cell may run.")
@click.option("--force", is_flag=True, help="Rerun notebooks whose inputs did not change.")
@click.option("--version-file", type=click.Path(dir_okay=False), default=None,
              help="After the train stage, write the registered version number to this file (CI passes it to the "
                   "approve job).")
@options.artifacts
def run(model_dir, stage, backend, parameters, cell_timeout, force, version_file, artifacts_dir) -> None:
    """Execute MODEL_DIR's notebooks for STAGE with papermill and store the artifacts."""
    from ci.models import resolve_model_dir
    from ci.runner import parse_parameters, run_stage

    artifacts = _artifacts(artifacts_dir)
    runs = run_stage(resolve_model_dir(model_dir), stage, backend=backend, parameters=parse_parameters(parameters),
                     artifacts=artifacts, cell_timeout=cell_timeout, force=force)
    for notebook_run in runs:
        click.echo(render.run_line(notebook_run))
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")
    if version_file:
        from ci.runner import write_registered_version

        version = write_registered_version(runs, Path(version_file))
        click.echo(f"registered version {version} written to {version_file}")


@main.command()
@click.argument("model_dir")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="The search's total number of trials (default: tuning.budget.trials in model.yml); trials an "
                   "earlier run of the same search finished count towards it.")
@click.option("--seconds", type=click.IntRange(min=1), default=None, help="This run's time budget.")
@click.option("--apply", "apply_best", is_flag=True,
              help="Write the best configuration into model.yml (comments kept) and print the diff.")
@options.backend
@click.option("--force", is_flag=True, help="Run the tune notebook even if nothing changed since its last run.")
@options.artifacts
def tune(model_dir, trials, seconds, apply_best, backend, force, artifacts_dir) -> None:
    """Search MODEL_DIR's hyperparameters on the validation split (the tune notebook); --apply writes the best."""
    from ci.models import resolve_model_dir
    from ci.runner import run_stage
    from modelops.records import TuneRecord

    folder = resolve_model_dir(model_dir)
    parameters = {k: v for k, v in (("trials", trials), ("seconds", seconds)) if v is not None}
    artifacts = _artifacts(artifacts_dir)
    runs = run_stage(folder, "tune", backend=backend, parameters=parameters, artifacts=artifacts, force=force)
    [record] = [r.record for r in runs if isinstance(r.record, TuneRecord)]
    click.echo(render.tune_summary(folder.name, record))
    click.echo(f"report: {artifacts.root / folder.name / 'tune.html'}")
    if apply_best:
        from modelops.training.tuning import apply_hyperparameters

        diff = apply_hyperparameters(folder.path / "model.yml", record.tuned_hyperparameters)
        click.echo(diff or f"{folder.name}/model.yml already holds the best configuration: nothing to apply")
        if diff:
            click.echo(f"next: commit {folder.name}/model.yml; CI trains it, and the review compares it with the "
                       f"champion on the test split")
    elif record.tuned_hyperparameters:
        click.echo(f"to write it into model.yml: python -m ci tune {model_dir} --apply")


@main.command()
@click.argument("model_dir")
@click.option("--print", "print_only", is_flag=True, help="Print the Markdown instead of posting it.")
@options.artifacts
def comment(model_dir, print_only, artifacts_dir) -> None:
    """Post MODEL_DIR's review as a comment on the build's GitHub pull request, or update the one posted before.

    Needs GITHUB_TOKEN and a pull request (CIRCLE_PULL_REQUEST, or the open one of CIRCLE_BRANCH); without either it
    says why in one line and exits 0.
    """
    import os

    from ci.artifacts import model_reviews
    from ci.comment import front_page_url, post_review, review_markdown
    from ci.models import resolve_model_dir

    folder = resolve_model_dir(model_dir)
    artifacts = _artifacts(artifacts_dir)
    if print_only:
        review = next((r for r in model_reviews(artifacts.runs()) if r.model == folder.name), None)
        if review is None:
            raise click.ClickException(f"no run of {folder.name} in {artifacts.root}: run its train stage first")
        click.echo(review_markdown(review, front_page=front_page_url(os.environ, folder.name),
                                   job_url=os.environ.get("CIRCLE_BUILD_URL"), commit=os.environ.get("CIRCLE_SHA1")),
                   nl=False)
        return
    click.echo(post_review(folder.name, artifacts))


@main.command()
@click.option("--base", default=None,
              help="Act as CircleCI: run only the models its path filtering selects against this revision (main).")
@click.option("--branch", default=None,
              help="Act as CircleCI on this branch: train and approve on any branch but main, deploy on main "
                   "(default with --base: $CIRCLE_BRANCH or the checked-out branch).")
@options.backend
@click.option("--approve", "auto_approve", is_flag=True,
              help="Approve each new version whose review verdict is APPROVE (then deploy it, in the whole flow).")
@click.option("--by", "approver", default=None, help="Who approves (default: $CIRCLE_USERNAME or your user name).")
@click.option("--no-deploy", is_flag=True, help="Stop after approval.")
@click.option("--force", is_flag=True, help="Rerun notebooks whose inputs did not change.")
@options.artifacts
def pipeline(base, branch, backend, auto_approve, approver, no_deploy, force, artifacts_dir) -> None:
    """Run the flow: with neither --base nor --branch, train, review, approve and deploy every model.

    With --base and/or --branch, run what CircleCI would run for this checkout: the changed models; on a branch
    the train stage and the approval step, on main the deploy stage. Without --approve it asks at a terminal,
    and elsewhere stops after review and prints the approve command.
    """
    import getpass
    import os

    from ci.pipeline import plan_pipeline, run_pipeline, summary_table

    plan = plan_pipeline(project_root(), base=base, branch=branch, deploy=not no_deploy)
    for warning in plan.changes.warnings if plan.changes else []:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if plan.changes and plan.changes.removed:
        click.echo(f"removed model folders, not run: {', '.join(plan.changes.removed)}", err=True)
    click.echo(plan.describe(), err=True)
    if not plan.models:
        click.echo("no model folder changed: nothing to run (CircleCI would run only the test job)")
        return
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    approval = "auto" if auto_approve else ("prompt" if interactive else "stop")
    artifacts = _artifacts(artifacts_dir)
    outcomes = run_pipeline(plan.models, backend=backend, artifacts=artifacts, approval=approval,
                            approver=approver or os.environ.get("CIRCLE_USERNAME") or getpass.getuser(),
                            deploy=plan.deploy, train=plan.train, confirm=lambda q: click.confirm(q, default=False),
                            force=force, log=lambda line: click.echo(line, err=True))
    click.echo(summary_table(outcomes))
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")
    for outcome in outcomes:
        if outcome.error:
            click.secho(f"error: {outcome.model}: {outcome.error}", fg="red", err=True)
    failed = [o for o in outcomes if not o.ok]
    if failed:
        sys.exit(max(o.exit_code for o in failed))


@main.command()
@click.option("--base", default=None,
              help="The base revision (default: the committed setup config's, main); origin/BASE stands for a branch "
                   "when this clone has it, as in CircleCI's checkout.")
@click.option("--branch", default=None, help="The branch being built (default: the one checked out).")
@click.option("--since", default=None,
              help="The last commit CI built on this branch (default on the base branch: its @{upstream}).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def changed(base, branch, since, as_json) -> None:
    """The model folders CircleCI's path filtering selects for HEAD, and the parameters it passes on."""
    import json

    from ci.changes import project_changes

    changes = project_changes(project_root(), base, branch=branch, since=since)
    if as_json:
        click.echo(json.dumps(changes.to_json(), indent=2))
        return
    click.echo(render.change_report(changes))
    for warning in changes.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)


@main.group()
def circleci() -> None:
    """Generate and check .circleci/config.yml and .circleci/dynamic_config.yml from the model folders."""


@circleci.command("generate")
def circleci_generate() -> None:
    """Write both CircleCI files from the model folders found now."""
    from ci.circleci import generate

    written = generate(project_root())
    click.echo("\n".join(f"wrote {path}" for path in written) or "both files are up to date")


@circleci.command("check")
def circleci_check() -> None:
    """Exit 1 when the checked-in CircleCI files differ from what `generate` would write."""
    from ci.circleci import stale_files

    stale = stale_files(project_root())
    if stale:
        click.secho(f"error: {', '.join(map(str, stale))} out of date with the model folders. Fix: python -m ci "
                    f"circleci generate, then commit the result.", fg="red", err=True)
        sys.exit(1)
    click.echo("CircleCI files are up to date")


@main.group()
def notebooks() -> None:
    """Generate and check each model folder's notebooks from notebooks/templates/."""


@notebooks.command("sync")
def notebooks_sync() -> None:
    """Write every model folder's notebooks from the templates, keeping each model's parameter values and cells
    tagged model-specific."""
    from ci.models import discover_models
    from ci.notebooks import sync

    root = project_root()
    written = sync(root, discover_models(root))
    click.echo("\n".join(f"wrote {path.relative_to(root)}" for path in written) or "every model notebook is in step")


@notebooks.command("check")
def notebooks_check() -> None:
    """Exit 1 when a model folder's notebook differs from what `sync` would write (with the diff)."""
    from ci.models import discover_models
    from ci.notebooks import check

    root = project_root()
    drifts = check(root, discover_models(root))
    for drift in drifts:
        click.echo(drift.describe(root), err=True)
    if drifts:
        click.secho(f"error: {len(drifts)} model notebook(s) out of step with notebooks/templates/. Fix: python -m ci "
                    f"notebooks sync (change the template, not the copy; a model's own cells are tagged "
                    f"model-specific), then commit the result.", fg="red", err=True)
        sys.exit(1)
    click.echo("every model notebook is in step with its template")


@main.command("fetch-data")
@click.argument("folder", type=click.Path(file_okay=False))
def fetch_data(folder) -> None:
    """Put every model's raw data file, verified by its sha256, under FOLDER (for MODELOPS_DATA_DIR)."""
    from ci.models import discover_models, fetch_datasets

    for path in fetch_datasets(discover_models(), Path(folder)):
        click.echo(path)


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
    @options.backend
    def command(model_dir, version, by, note, backend) -> None:
        from modelops.release.history import checkout_commit
        from modelops.review.packages import pending_for_folder

        config, ops = _model_and_backend(model_dir, backend)
        package = ops.registry.get(config.name, version) if version else pending_for_folder(ops.registry, config)
        changed = getattr(ops.registry, action)(config.name, package.version, by=by, note=note,
                                                git_commit=checkout_commit(config.folder))
        click.echo(f"{changed.label}: {changed.status} by {changed.status_by} at {changed.status_at}")

    command.__doc__ = f"{action.capitalize()} a registered version of MODEL_DIR's model, recording who and why."
    return command


main.command("approve")(_status_command("approve"))
main.command("reject")(_status_command("reject"))


@main.command()
@click.argument("model_dir")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@options.backend
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
    click.echo(render.registry_table(versions, [t.metric for t in config.quality]))


@main.command()
@click.argument("model_dir")
@options.environment("staging", "Staging (then the promotion gate runs against it), or production (only a package "
                                "that passed the gate; `promote` is the usual way).")
@click.option("--version", type=int, default=None, help="Deploy this approved version (default: by lineage).")
@click.option("--latest-approved", is_flag=True,
              help="If no approved version matches this folder's git tree, deploy the newest approved one.")
@click.option("--by", default=None, help="Who deploys (recorded in the history; default: $CIRCLE_USERNAME or you).")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the endpoint.")
@options.backend
@options.artifacts
def deploy(model_dir, env_name, version, latest_approved, by, timeout, backend, artifacts_dir) -> None:
    """Deploy the approved package of MODEL_DIR that matches its git tree (the deploy notebook; on staging, then the
    gate notebook: the promotion gate). Exits 9 when the gate fails; production refuses a package whose newest
    gate did not pass (exit 4) before any notebook runs, so the record of what production serves stays."""
    from ci.models import resolve_model_dir
    from ci.runner import run_stage

    if env_name == "production":
        from modelops.release.deploy import require_gate_passed, select_package

        config, ops = _model_and_backend(model_dir, backend)
        require_gate_passed(ops, config, select_package(ops.registry, config, version=version,
                                                        latest_approved=latest_approved))

    parameters = {"timeout": timeout, **({"by": by} if by else {})}
    if version is not None:
        parameters["version"] = version
    if latest_approved:
        parameters["latest_approved"] = True
    artifacts = _artifacts(artifacts_dir)
    runs = run_stage(resolve_model_dir(model_dir), "deploy" if env_name == "staging" else "production",
                     backend=backend, parameters=parameters, artifacts=artifacts)
    for notebook_run in runs:
        click.echo(render.describe_run(notebook_run))
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")


@main.command()
@click.argument("model_dir")
@click.option("--by", required=True, help="Who promotes (recorded in the history).")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the endpoint.")
@options.backend
@options.artifacts
def promote(model_dir, by, timeout, backend, artifacts_dir) -> None:
    """Put the package MODEL_DIR's staging endpoint serves into production, if it is approved and passed the
    promotion gate (exit 4 if not; production is then untouched)."""
    from ci.models import resolve_model_dir
    from ci.pipeline import promote_model

    artifacts = _artifacts(artifacts_dir)
    run = promote_model(resolve_model_dir(model_dir), by=by, backend=backend, artifacts=artifacts, timeout=timeout)
    click.echo(render.describe_run(run))
    click.echo(f"artifacts: {artifacts.root / 'index.html'}")


@main.command()
@click.argument("model_dir")
@options.environment(None, "Only this environment's versions and events (default: both).")
@click.option("--at", "instant", default=None,
              help="Which version served at this instant (ISO 8601, e.g. 2026-12-01T10:00Z; no offset means UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verify", is_flag=True, help="Only check the hash chain: exit 8 naming the event where it breaks.")
@options.backend
def history(model_dir, env_name, instant, as_json, verify, backend) -> None:
    """What MODEL_DIR's model served when, and every approval, rejection, deployment, gate, promotion, rollback and
    stop, with who, when, version, package, environment, commit and CI job."""
    from modelops.release.history import history_report, verify_history

    config, ops = _model_and_backend(model_dir, backend)
    if verify:
        click.echo(verify_history(ops.history, config.name).describe())
        return
    report = history_report(ops.history, config.name, env_name=env_name, instant=instant)
    if not report.chain.intact:
        click.secho(f"warning: {report.chain.describe()} (this answer may rest on altered events; `python -m ci "
                    f"history {model_dir} --verify`)", fg="yellow", err=True)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render.render_history(report))


@main.command()
@click.argument("model_dir")
@click.option("--csv", "csv_file", default=None, type=click.File("rb"),
              help="Rows of features (no header, no label), or - for stdin.")
@click.option("--raw", "raw_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Raw records instead: a CSV file whose header names the data's own columns (target optional), "
                   "encoded as in training (features.py, one-hot columns) before sending.")
@options.unseen
@click.option("--content-type", default="text/csv", show_default=True, help="text/csv or text/libsvm.")
@click.option("--accept", default="text/csv", show_default=True,
              help="text/csv, application/json or application/jsonlines.")
@options.environment("production", "Which environment's endpoint.")
@options.backend
def invoke(model_dir, csv_file, raw_file, unseen, content_type, accept, env_name, backend) -> None:
    """Send rows to MODEL_DIR's endpoint and print its predictions."""
    if (csv_file is None) == (raw_file is None):
        raise click.UsageError("pass --csv FILE (encoded feature rows) or --raw FILE (raw records), one of them.")
    config, ops = _model_and_backend(model_dir, backend)
    if raw_file:
        from modelops.data.prepare import read_records
        from modelops.release.deploy import encode_request

        body = encode_request(ops, config, read_records(raw_file), unseen=unseen, env_name=env_name)
        content_type = "text/csv"
    else:
        body = csv_file.read()
    answer = ops.endpoints.invoke(config.deploy_environment(env_name).endpoint, body, content_type=content_type,
                                  accept=accept)
    click.echo(answer.decode(), nl=False)


@main.command()
@click.argument("model_dir")
@click.option("--input", "input_uri", required=True,
              help="A CSV file or s3:// object of feature rows without a header (as `invoke --csv`), or with --raw "
                   "of raw records.")
@click.option("--output", "output_uri", required=True,
              help="Where the answers go, a file or s3:// object: a line per row, as the endpoint answers text/csv.")
@click.option("--raw", is_flag=True, help="The input holds raw records under a header row of the data's own columns, "
                                          "encoded as in training (features.py, one-hot columns).")
@options.unseen
@options.environment("production", "Score with the package this environment serves.")
@options.backend
def transform(model_dir, input_uri, output_uri, raw, unseen, env_name, backend) -> None:
    """Score a table with the package MODEL_DIR's environment serves: locally in-process in chunks (no endpoint),
    on SageMaker as a batch transform job. A bad row stops it naming its line; --output is then untouched."""
    from modelops.release.transform import transform_table

    config, ops = _model_and_backend(model_dir, backend)
    click.echo(render.transform_line(transform_table(ops, config, input_uri, output_uri, env_name=env_name, raw=raw,
                                                     unseen=unseen, log=lambda line: click.echo(line, err=True))))


@main.command()
@click.argument("model_dir")
@options.environment("production", "Which environment's endpoint.")
@click.option("--by", default=None, help="Who rolls back (recorded in the history; default: $CIRCLE_USERNAME or you).")
@click.option("--timeout", default=600, show_default=True, help="Seconds to wait for the endpoint.")
@options.backend
def rollback(model_dir, env_name, by, timeout, backend) -> None:
    """Switch MODEL_DIR's endpoint back to the version it served before (recorded in the history)."""
    from modelops.release.deploy import rollback_endpoint

    config, ops = _model_and_backend(model_dir, backend)
    deployment = rollback_endpoint(ops, config, env_name, by=by, timeout=timeout, log=lambda line: None)
    click.echo(deployment.message)


@main.command()
@click.argument("model_dirs", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Stop every running endpoint `ci endpoints` lists.")
@options.environment(None, "Only this environment's endpoint (default: staging's and production's).")
@click.option("--by", default=None, help="Who stops them (recorded in the history; default: $CIRCLE_USERNAME or you).")
@options.backend
def stop(model_dirs, every, env_name, by, backend) -> None:
    """Stop the endpoints of MODEL_DIRS (the record of their versions is kept for the next deploy; each stop is
    recorded in the model's history)."""
    from ci.runner import pin_environment
    from modelops.backends import get_backend
    from modelops.release.deploy import endpoints_to_stop, stop_endpoint

    if bool(model_dirs) == every:
        raise click.UsageError("name the model folders whose endpoints to stop, or pass --all (not both).")
    pin_environment()
    ops = get_backend(backend)
    configs = [_model_and_backend(model_dir, backend)[0] for model_dir in model_dirs]  # all checked first
    names = endpoints_to_stop(ops, None if every else configs, env_name)
    for name in names:
        stop_endpoint(ops, name, by=by, folder=project_root())
        click.echo(f"{name}: stopped")
    if not names:
        click.echo("no endpoint is running")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@options.backend
def endpoints(as_json, backend) -> None:
    """List endpoints with status, version, URL and uptime (local: and the AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME line)."""
    import dataclasses
    import json

    from ci.runner import pin_environment
    from modelops.backends import get_backend

    pin_environment()
    ops = get_backend(backend)
    found = ops.endpoints.list()
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(e) for e in found], indent=2, default=str))
        return
    if not found:
        click.echo("no endpoints yet (python -m ci deploy MODEL_DIR)")
        return
    click.echo(render.endpoints_table(found, ops.endpoints.runtime_url()))


@main.command("new-model")
@click.argument("name")
@click.option("--problem", type=click.Choice(list(PROBLEM_METRICS)), required=True)
@click.option("--source", required=True, help="https:// or s3:// URL, or a local path, of a CSV file.")
@click.option("--target", required=True, help="The column to predict.")
@click.option("--header/--no-header", default=None, help="Whether the first row names the columns (default: sniffed).")
@click.option("--columns", default=None, help="Comma-separated column names, for a file without a header row.")
@click.option("--positive-label", default=None, help="Binary: the target value of the positive class.")
@click.option("--description", default=None, help="One line for model.yml.")
def new_model(name, problem, source, target, header, columns, positive_label, description) -> None:
    """Create NAME/ with the template notebooks and a model.yml read off the data."""
    from ci.scaffold import new_model as scaffold

    folder = scaffold(project_root(), name, problem=problem, source=source, target=target, header=header,
                      columns=[c.strip() for c in columns.split(",")] if columns else None,
                      positive_label=positive_label, description=description)
    click.echo(f"created {folder.name}/ ({', '.join(sorted(p.name for p in folder.iterdir()))})")
    click.echo(f"next: review {folder.name}/model.yml, then `python -m ci run {folder.name} --stage train`")


main.add_command(monitor_command.monitor)
main.add_command(aws.group)
