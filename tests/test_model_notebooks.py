"""The real model notebooks, executed through papermill on the real data (MODELOPS_DATA_DIR)."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
import yaml

from ci.artifacts import Artifacts, model_reviews
from ci.models import ModelFolder, resolve_model_dir
from ci.runner import run_stage
from modelops import get_backend
from modelops.config import load_model_config
from modelops.entities import PENDING
from modelops.errors import NotebookFailed
from tests.support.gitrepo import make_project
from tests.support.paths import ROOT

EXPECTED_GATHER = {
    "abalone_model": {"rows_train": 2924, "rows_validation": 835, "rows_test": 418, "n_features": 10,
                      "data_sha256": "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"},
    "churn_model": {"rows_train": 3500, "rows_validation": 1000, "rows_test": 500, "n_features": 99,
                    "data_sha256": "f2bbe2a120317bc0228beec59da1fcbc31d589280b1b674814eaf5174c2ca6cc"},
}


def images(path) -> int:
    notebook = nbformat.read(path, 4)
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.notebook
@pytest.mark.parametrize("model", sorted(EXPECTED_GATHER))
def test_the_gather_notebook_writes_the_dataset_and_shows_two_figures(home, tmp_path, model):
    artifacts = Artifacts(tmp_path / "artifacts")
    [run] = run_stage(resolve_model_dir(ROOT / model), "gather", backend="local", artifacts=artifacts)
    assert run.status == "passed"
    assert EXPECTED_GATHER[model].items() <= run.scraps.items()
    assert run.parameters == {"backend": "local"}
    executed = tmp_path / "artifacts" / model / "gather_data.ipynb"
    assert images(executed) == 2  # target distribution and correlation, each shown once
    assert (home / "store").is_dir()
    metrics = artifacts.metrics(model)
    assert metrics["rows_test"] == EXPECTED_GATHER[model]["rows_test"]
    if model == "churn_model":
        assert 0.45 < metrics["positive_rate_train"] < 0.55


@pytest.mark.notebook
def test_a_split_seed_parameter_gives_another_dataset(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    [run] = run_stage(resolve_model_dir(ROOT / "abalone_model"), "gather", artifacts=artifacts,
                      parameters={"split_seed": 7})
    assert run.parameters == {"backend": "local", "split_seed": 7}
    default_id = "4d8041a6072a820b"  # the dataset id of the default seed (1729)
    assert run.scraps["dataset_id"] != default_id and run.scraps["rows_train"] == 2924


@pytest.mark.notebook
def test_gather_offline_without_data_points_at_the_fix(offline_home, tmp_path, monkeypatch):
    import socket

    from modelops.errors import NotebookFailed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed, match=r"DataSourceError: could not download.*MODELOPS_DATA_DIR"):
        run_stage(resolve_model_dir(ROOT / "abalone_model"), "gather", artifacts=artifacts,
                  parameters={"source": f"http://127.0.0.1:{port}/abalone.data"})
    assert (tmp_path / "artifacts" / "abalone_model" / "gather_data.html").is_file()


# The tuned hyperparameters on the fixed split (seed 1729): abalone test RMSE 2.0936 (the tutorial's: 2.171), churn
# test AUC 0.9858 (0.9796).
EXPECTED_QUALITY = {
    "abalone_model": {"rmse": (2.05, 2.10), "r2": (0.57, 0.62), "null_rmse": (3.0, 3.4)},
    "churn_model": {"auc": (0.985, 0.99), "accuracy": (0.93, 0.96), "null_auc": (0.5, 0.5)},
}


@pytest.mark.notebook
@pytest.mark.parametrize(("model", "expected"), [("abalone_model", EXPECTED_QUALITY["abalone_model"])])
def test_train_stage_trains_evaluates_registers_and_reviews(home, tmp_path, model, expected):
    artifacts = Artifacts(tmp_path / "artifacts")
    folder = resolve_model_dir(ROOT / model)
    runs = run_stage(folder, "train", backend="local", artifacts=artifacts)
    assert [(r.notebook, r.status) for r in runs] == [
        ("gather_data", "passed"), ("train_register", "passed"), ("review", "passed")]
    metrics = artifacts.metrics(model)
    for name, (low, high) in expected.items():
        assert low <= metrics[name] <= high, (name, metrics[name])
    assert metrics["quality_passed"] is True and metrics["version"] == 1
    assert metrics["verdict"] == "APPROVE"
    [package] = get_backend("local").registry.versions(folder.config().name)
    assert package.status == PENDING and package.version == 1
    assert package.lineage.notebook_artifact == f"{model}/train_register.html"
    assert package.lineage.tree_hash and package.data_sha256 == metrics["data_sha256"]
    assert package.metrics["rmse" if model == "abalone_model" else "auc"] == metrics[
        "rmse" if model == "abalone_model" else "auc"]
    train_html = tmp_path / "artifacts" / model / "train_register.html"
    assert "quality gates passed" in train_html.read_text()
    figures = 4 if model == "abalone_model" else 5  # curve + evaluation figures + feature importance
    assert images(tmp_path / "artifacts" / model / "train_register.ipynb") == figures
    assert images(tmp_path / "artifacts" / model / "review.ipynb") == 1  # the metrics against champion and null model

    # Again with nothing changed: nothing runs, and the summary says why.
    runs = run_stage(folder, "train", backend="local", artifacts=artifacts)
    assert [r.status for r in runs] == ["skipped", "skipped", "skipped"]
    assert "already gathered" in runs[0].reason and runs[1].reason.startswith("up to date: inputs unchanged")
    assert runs[1].html == f"{model}/train_register.html" and artifacts.metrics(model)["version"] == 1

    # Approving v1 changes nothing v1's review reads (its champion, excluding itself, is still none).
    get_backend("local").registry.approve(folder.config().name, 1, by="test")
    assert [r.status for r in run_stage(folder, "train", artifacts=artifacts)] == ["skipped"] * 3

    # Forced: a new version, reviewed against the approved one.
    runs = run_stage(folder, "train", backend="local", artifacts=artifacts, force=True)
    assert [r.status for r in runs] == ["skipped", "passed", "passed"]
    assert artifacts.metrics(model)["champion_version"] == 1 and artifacts.metrics(model)["version"] == 2
    # Same data, same seed: the same model, scored on the same rows. Its interval is [0, 0]: the two cannot be told
    # apart, so the verdict is HOLD, not APPROVE.
    reviewed = artifacts.metrics(model)
    assert reviewed["verdict"] == "HOLD" and reviewed["decided_by"].startswith("not better than the champion")
    assert {row["metric"]: row["ci95"] for row in reviewed["comparison"]} == {
        name: [0.0, 0.0] for name in ("rmse", "mae", "r2", "mse")}
    assert reviewed["bootstrap"]["resamples"] == 2000 and reviewed["bootstrap"]["rows"] == 418
    # A forced run is remembered like any other: the next unchanged run skips it.
    assert [r.status for r in run_stage(folder, "train", artifacts=artifacts)] == ["skipped"] * 3

    # A registered version that disappeared from the registry is not trusted: train_register reruns.
    import sqlite3

    with sqlite3.connect(home / "registry.db") as db:
        db.execute("DELETE FROM packages WHERE version = 2")
    assert run_stage(folder, "train", artifacts=artifacts)[1].status == "passed"

    # Another split: the champion (v1) is re-scored on the challenger's test rows, and the review says so.
    runs = run_stage(folder, "train", artifacts=artifacts, parameters={"split_seed": 7})
    reviewed = artifacts.metrics(model)
    assert reviewed["version"] > 1 and reviewed["champion_version"] == 1
    assert any(note.startswith("champion v1 was re-scored on the challenger's test rows (dataset ")
               for note in reviewed["review_notes"])
    rows = {row["metric"]: row for row in reviewed["comparison"]}
    assert rows["rmse"]["ci95"][0] < rows["rmse"]["improvement"] < rows["rmse"]["ci95"][1]
    assert rows["rmse"]["champion"] != get_backend("local").registry.get(folder.config().name, 1).metrics["rmse"]


@pytest.mark.notebook
def test_failed_quality_gate_fails_the_run_and_registers_nothing(home, tmp_path):
    repo = make_project(tmp_path / "project")
    config_path = repo.path / "abalone_model" / "model.yml"
    raw = yaml.safe_load(config_path.read_text())
    raw["quality"] = {"rmse": {"max": 1.0}}
    config_path.write_text(yaml.safe_dump(raw))
    artifacts = Artifacts(tmp_path / "artifacts")
    expected = r"QualityGateFailed: abalone-model: quality gate failed \(rmse = 2\.\d+, threshold <= 1\)"
    with pytest.raises(NotebookFailed, match=expected) as failed:
        run_stage(ModelFolder(repo.path / "abalone_model"), "train", artifacts=artifacts)
    assert failed.value.exit_code == 3
    assert get_backend("local").registry.versions("abalone-model") == []
    html = (tmp_path / "artifacts" / "abalone_model" / "train_register.html").read_text()
    assert "1 of 1 quality gates FAILED" in html
    # The review still ran, on the evaluation the training stored, so the reviewer has a page for this run.
    runs = {r.notebook: r for r in artifacts.runs()}
    assert runs["train_register"].status == "failed" and runs["review"].status == "passed"
    review = runs["review"].record
    assert review.verdict == "REJECT" and re.search(r"rmse = 2\.\d+, required <= 1", review.verdict_line)
    assert "required <= 1" in review.verdict_line
    assert review.challenger_version is None
    [page] = model_reviews(artifacts.runs())
    assert page.verdict == "REJECT" and page.gates == [
        {"metric": "rmse", "value": pytest.approx(2.0936, abs=1e-3), "threshold": "<= 1", "passed": False}]
    assert "REJECT" in (tmp_path / "artifacts" / "index.html").read_text()


@pytest.mark.notebook
def test_pipeline_trains_approves_deploys_gates_and_promotes_both_models(home, tmp_path):
    from ci.models import discover_models
    from ci.pipeline import run_pipeline, summary_table
    from ci.render import render_history
    from modelops.release.history import actor, history_report, verify_history

    artifacts = Artifacts(tmp_path / "artifacts")
    outcomes = run_pipeline(discover_models(ROOT), backend="local", artifacts=artifacts, approval="auto",
                            approver="ci-test", log=lambda line: None)
    assert [(o.model, o.ok, o.version) for o in outcomes] == [("abalone_model", True, 1), ("churn_model", True, 1)]
    ops = get_backend("local")
    for outcome in outcomes:
        metrics = artifacts.metrics(outcome.model)
        for name, (low, high) in EXPECTED_QUALITY[outcome.model].items():
            assert low <= metrics[name] <= high, (outcome.model, name, metrics[name])
        primary = "rmse" if outcome.model == "abalone_model" else "auc"
        name = outcome.model.replace("_", "-")
        # Each environment's deploy notebook scored the test split through its endpoint: same answers, same metric.
        for env in ("staging", "production"):
            deployed = metrics[f"deploy-{env}"]
            assert deployed["predictions_identical"] is True and deployed["deployed"] is True
            assert deployed[f"endpoint_{primary}"] == pytest.approx(metrics[primary], rel=1e-6)
            assert deployed["p50_latency_ms"] > 0 and deployed["rows_per_second"] > 0
            assert images(tmp_path / "artifacts" / outcome.model / f"deploy-{env}.ipynb") == 1
        # The gate replayed every test row through staging, answered exactly as the artifact predicts offline.
        rows = EXPECTED_GATHER[outcome.model]["rows_test"]
        assert (metrics["gate_passed"], metrics["rows_replayed"], metrics["rows_identical"], metrics["errors"]) == (
            True, rows, rows, 0)
        assert 0 < metrics["gate_p50_ms"] <= metrics["gate_p99_ms"] <= metrics["slo_p99_ms"] == 500
        assert outcome.gate.gate_passed and images(tmp_path / "artifacts" / outcome.model / "gate.ipynb") == 1
        # Production serves the very package staging serves.
        staging, production = ops.endpoints.status(f"{name}-staging"), ops.endpoints.status(name)
        assert staging.package_id == production.package_id == f"local:{name}/1"
        assert outcome.endpoint_url == production.url and outcome.smoke_prediction is not None
        package = ops.registry.get(name, 1)
        assert package.status == "Approved" and package.status_by == "ci-test"
        events = ops.history.events(name)
        runner = actor()  # who deployed to staging and ran the gate: nobody was named, so the user running them
        assert [(e.action, e.environment, e.by) for e in events] == [
            ("registered", None, events[0].by), ("Approved", None, "ci-test"), ("deployed", "staging", runner),
            ("gate-passed", "staging", runner), ("promoted", "production", "ci-test")]
        assert {e.package_id for e in events} == {f"local:{name}/1"} and events[-1].git_commit
        assert verify_history(ops.history, name).intact
        answer = history_report(ops.history, name, instant=events[-1].at)
        assert [(s.env_name, s.version) for s in answer.served] == [("staging", 1), ("production", 1)]
        print(render_history(answer))  # the answer the report quotes (pytest -s)
    table = summary_table(outcomes)
    assert "abalone_model" in table and "staging" in table and "production" in table and "passed (p99" in table
    [page] = [r for r in model_reviews(artifacts.runs()) if r.model == "abalone_model"]
    assert set(page.deployed) == {"staging", "production"} and page.promote_command is None

    # The pipeline again with nothing changed executes no notebook: not even the gates, since production serves
    # what staging serves and each gate passed against the staging server still running; their reason says so.
    rerun = run_pipeline(discover_models(ROOT), backend="local", artifacts=artifacts, approval="auto",
                         approver="ci-test", log=lambda line: None)
    assert [o.ok for o in rerun] == [True, True]
    assert [(o.model, r.name) for o in rerun for r in o.runs if r.status != "skipped"] == []
    assert len([r for o in rerun for r in o.runs]) == 12
    gates = {o.model: next(r for r in o.runs if r.name == "gate") for o in rerun}
    for model, gate in gates.items():
        staging = ops.endpoints.status(f"{model.replace('_', '-')}-staging")
        assert gate.record.staging_server == staging.server_id
        assert ("production serves v1, the package staging serves; its newest gate passed at " in gate.reason
                and gate.reason.endswith(f"against the staging server still running ({staging.server_id})"))

    # Deploying again from the same tree: both skipped while staging serves it; forced, the notebook says so.
    folder = resolve_model_dir(ROOT / "abalone_model")
    again = run_stage(folder, "deploy", artifacts=artifacts)
    assert [(r.name, r.status) for r in again] == [("deploy-staging", "skipped"), ("gate", "skipped")]
    forced = run_stage(folder, "deploy", artifacts=artifacts, force=True)
    assert forced[0].status == "passed" and forced[0].scraps["deployed"] is False
    # Once the staging endpoint is stopped, the deploy notebook runs again and brings it back, on a new server
    # process: the gate measured another one, so it runs again.
    measured = forced[1].record.staging_server
    get_backend("local").endpoints.stop("abalone-model-staging")
    restarted = run_stage(folder, "deploy", artifacts=artifacts)
    assert [r.status for r in restarted] == ["passed", "passed"] and restarted[0].scraps["deployed"] is True
    assert restarted[1].record.staging_server not in (None, measured)


@pytest.mark.notebook
def test_pipeline_without_approval_stops_and_prints_the_command(home, tmp_path):
    from ci.pipeline import run_pipeline

    artifacts = Artifacts(tmp_path / "artifacts")
    [outcome] = run_pipeline([resolve_model_dir(ROOT / "abalone_model")], backend="local", artifacts=artifacts,
                             approval="stop", log=lambda line: None)
    assert outcome.ok and outcome.endpoint_url is None
    assert outcome.stopped == "awaiting approval: python -m ci approve abalone_model --version 1 --by NAME"
    assert get_backend("local").registry.get("abalone-model", 1).status == PENDING
    [declined] = run_pipeline([resolve_model_dir(ROOT / "abalone_model")], backend="local", artifacts=artifacts,
                              approval="prompt", confirm=lambda question: False, force=True, log=lambda line: None)
    assert declined.stopped.startswith("not approved") and declined.version == 2


@pytest.mark.notebook
def test_deploy_stage_without_an_approved_package_exits_4(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed, match=r"NoApprovedPackage: no approved package of abalone-model") as failed:
        run_stage(resolve_model_dir(ROOT / "abalone_model"), "deploy", artifacts=artifacts)
    assert failed.value.exit_code == 4
    assert (tmp_path / "artifacts" / "abalone_model" / "deploy-staging.html").is_file()


def _nbval(folder, *notebooks: str):
    """Run notebooks as Jupyter would (kernel in the notebook's folder, default parameters) under nbval."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                             "-o", "addopts=", "--rootdir", str(folder), *notebooks],
                            cwd=folder, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


@pytest.mark.notebook
@pytest.mark.slow
def test_notebooks_run_under_nbval_in_the_order_of_the_flow(home, tmp_path):
    """What `jupyter lab` + "Run All" does, checked with nbval: gather, train, the shared review, approve, deploy."""
    repo = make_project(tmp_path / "project", models=("abalone_model",))
    folder = repo.path / "abalone_model"
    output = _nbval(folder, "gather_data.ipynb", "train_register.ipynb", "../notebooks/review.ipynb")
    assert " passed" in output and "failed" not in output
    registry = get_backend("local").registry
    [pending] = registry.versions("abalone-model", PENDING)
    registry.approve("abalone-model", pending.version, by="jupyter-user")
    assert " passed" in _nbval(folder, "deploy.ipynb", "gate.ipynb")  # staging, then the gate against it
    status = get_backend("local").endpoints.status("abalone-model-staging")
    assert status.status == "InService" and status.version == pending.version
    assert [e.action for e in get_backend("local").history.events("abalone-model")][-2:] == ["deployed",
                                                                                            "gate-passed"]
    # Promoted, production serves clients; the monitor, run as it stands, finds their rows like training (the
    # deploy's own checks, captured too, are left out).
    import modelops
    from modelops.data.prepare import features_and_target
    from modelops.serving.protocol import to_csv

    ops = get_backend("local")
    config = modelops.load_model_config(folder)
    modelops.deploy_package(ops, config, registry.get("abalone-model", pending.version), env_name="production",
                            by="jupyter-user", log=lambda line: None)
    rows, _ = features_and_target(modelops.read_split(ops.store, modelops.load_dataset(ops.store, config), "test"))
    for start in range(0, len(rows), 10):
        ops.endpoints.invoke("abalone-model", to_csv(rows[start:start + 10]))
    time.sleep(0.5)  # the capture thread writes every 100 ms
    assert " passed" in _nbval(folder, "monitor.ipynb")


@pytest.mark.notebook
def test_tune_searches_on_validation_and_apply_writes_model_yml_keeping_comments(home, tmp_path):
    """`python -m ci tune --trials 4 --apply` as a user runs it: the tune notebook, its report, then model.yml."""
    import os
    import subprocess
    import sys

    repo = make_project(tmp_path / "project")
    config_path = repo.path / "abalone_model" / "model.yml"
    before = config_path.read_text()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def tune(*args):
        return subprocess.run([sys.executable, "-m", "ci", "tune", "abalone_model", "--trials", "4", *args],
                              cwd=repo.path, env=env, capture_output=True, text=True, timeout=900)

    done = tune("--apply")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "abalone_model: 4 trials (" in done.stdout and "validation:rmse: tuned " in done.stdout
    assert "--- model.yml (before)" in done.stdout and "+++ model.yml (tuned)" in done.stdout
    after = config_path.read_text()
    assert after != before and before.splitlines()[0] in after  # the header comment is kept
    assert load_model_config(config_path).training.hyperparameters["num_round"] <= 1500
    executed = repo.path / "artifacts" / "abalone_model" / "tune.ipynb"
    assert images(executed) == 2  # the optimisation history and the parameter importances
    metrics = json.loads((repo.path / "artifacts" / "abalone_model" / "metrics.json").read_text())
    assert metrics["trials"] == 4 and metrics["objective"] == "validation:rmse" and metrics["tuned_hyperparameters"]
    assert "rmse" not in metrics  # a validation score never under a test metric's name
    # Again: model.yml changed, so the notebook runs, and the stored study resumes: no new trial, nothing to apply.
    again = tune("--apply")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 from an earlier run" in again.stdout and "already holds the best configuration" in again.stdout
    assert config_path.read_text() == after
