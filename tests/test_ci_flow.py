"""The CircleCI flow run locally: what a checkout plans, and one model from a feature branch to main."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest

from ci.pipeline import plan_pipeline
from modelops import get_backend
from tests.support.gitrepo import Repo, make_project


@pytest.fixture(autouse=True)
def not_in_circleci(monkeypatch):
    """These tests build their own branches: CircleCI's own $CIRCLE_BRANCH (when they run there) must not leak in."""
    monkeypatch.delenv("CIRCLE_BRANCH", raising=False)


def small_project(tmp_path) -> Repo:
    repo = Repo(tmp_path / "repo")
    for model in ("abalone_model", "churn_model"):
        repo.write(f"{model}/model.yml", f"name: {model}\n")
    repo.write("README.md", "# x\n")
    repo.commit("initial")
    repo.write("docs/a.md", "a\n")
    repo.commit("second")
    return repo


def names(plan) -> list[str]:
    return [m.name for m in plan.models]


def test_plan_without_base_or_branch_is_the_whole_flow_for_every_model(tmp_path):
    repo = small_project(tmp_path)
    repo.git("checkout", "-q", "-b", "feature")
    plan = plan_pipeline(repo.path)
    assert (names(plan), plan.train, plan.deploy, plan.branch) == (["abalone_model", "churn_model"], True, True, None)
    assert plan_pipeline(repo.path, deploy=False).deploy is False  # --no-deploy


def test_plan_on_a_branch_trains_the_changed_models_and_on_main_deploys_them(tmp_path, monkeypatch):
    repo = small_project(tmp_path)
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("churn_model/notes.md", "x\n")
    repo.commit("churn")
    plan = plan_pipeline(repo.path, base="main")
    assert (names(plan), plan.train, plan.deploy, plan.branch) == (["churn_model"], True, False, "feature")
    assert "branch feature: train + approval for churn_model (changed against main)" == plan.describe()
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "feature")
    plan = plan_pipeline(repo.path, base="main")
    assert (names(plan), plan.train, plan.deploy, plan.branch) == (["churn_model"], False, True, "main")
    # --branch alone: every model, as CircleCI would run them on that branch; CIRCLE_BRANCH is CI's own answer.
    assert (names(plan_pipeline(repo.path, branch="main")), plan_pipeline(repo.path, branch="x").train) == (
        ["abalone_model", "churn_model"], True)
    monkeypatch.setenv("CIRCLE_BRANCH", "release-candidate")
    assert plan_pipeline(repo.path, base="main").train is True


def test_plan_with_only_docs_changed_runs_nothing(tmp_path):
    repo = small_project(tmp_path)
    repo.git("checkout", "-q", "-b", "docs")
    repo.write("README.md", "# better docs\n")
    repo.commit("docs")
    assert names(plan_pipeline(repo.path, base="main")) == []


def pipeline(repo: Repo, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CIRCLE_BRANCH", None)
    return subprocess.run([sys.executable, "-m", "ci", "pipeline", "--base", "main", "--backend", "local",
                           "--artifacts", str(tmp_path / "artifacts"), *args], cwd=repo.path, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.mark.notebook
def test_feature_branch_trains_and_waits_for_approval_then_main_deploys_it(home, tmp_path):
    repo = make_project(tmp_path / "project", models=("abalone_model",))
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("abalone_model/notes.md", "Why this model changes.\n")
    repo.commit("feature work")

    # On the branch: train, then stop at the approval step and print the command that approves.
    branch_run = pipeline(repo, tmp_path)
    assert branch_run.returncode == 0, branch_run.stderr
    assert "branch feature: train + approval for abalone_model" in branch_run.stderr
    command = re.search(r"awaiting approval: (python -m ci approve .+ --by NAME)", branch_run.stdout).group(1)
    assert command == "python -m ci approve abalone_model --version 1 --by NAME"
    artifacts = tmp_path / "artifacts" / "abalone_model"
    assert {p.name for p in artifacts.glob("*.html")} == {"gather_data.html", "train_register.html", "review.html"}
    registry = get_backend("local").registry
    assert registry.get("abalone-model", 1).status == "PendingManualApproval"
    assert get_backend("local").endpoints.list() == []  # nothing deploys from a branch

    # The approval, as printed (CircleCI's approve job runs the same command).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    approve = subprocess.run([sys.executable, *shlex.split(command.removeprefix("python"))[:-1], "alice"],
                             cwd=repo.path, env=env, capture_output=True, text=True)
    assert approve.returncode == 0, approve.stderr
    assert registry.get("abalone-model", 1).status_by == "alice"

    # Squash-merged to main: deploy only, the approved package found by the model folder's tree.
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--squash", "feature")
    repo.commit("feature (squashed)")
    main_run = pipeline(repo, tmp_path)
    assert main_run.returncode == 0, main_run.stderr
    assert "branch main: deploy to staging + gate + promotion for abalone_model" in main_run.stderr
    [endpoint] = get_backend("local").endpoints.list()  # staging; production waits for the second approval
    assert (endpoint.name, endpoint.version, endpoint.status) == ("abalone-model-staging", 1, "InService")
    assert endpoint.url in main_run.stdout
    assert "awaiting promotion: python -m ci promote abalone_model --by NAME" in main_run.stdout
    assert (artifacts / "deploy-staging.html").is_file() and (artifacts / "gate.html").is_file()
    assert [p.version for p in registry.versions("abalone-model")] == [1]  # main trained nothing
