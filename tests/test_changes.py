"""Change detection on real git repositories: the path-filtering orb's decision, its traps, and lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ci import changes as changes_module
from ci.changes import EMPTY_TREE, FileChange, orb_files, orb_parameters, project_changes
from ci.pathfilter import parse_mapping
from tests.conftest import ROOT
from tests.gitrepo import Repo, make_project

MODELS = ("abalone_model", "churn_model")


@pytest.fixture(autouse=True)
def not_in_circleci(monkeypatch):
    """These tests build their own branches: CircleCI's own $CIRCLE_BRANCH (when they run there) must not leak in."""
    monkeypatch.delenv("CIRCLE_BRANCH", raising=False)


def project(tmp_path, models=MODELS) -> Repo:
    """Model folders (only their files matter here), shared code, README and tests, committed on main."""
    repo = Repo(tmp_path / "repo")
    for model in models:
        repo.write(f"{model}/model.yml", f"name: {model}\n")
        repo.write(f"{model}/train_register.ipynb", "{}\n")
    repo.write("modelops/config.py", "X = 1\n")
    repo.write("environment.yml", "name: modelops\n")
    repo.write("README.md", (ROOT / "README.md").read_text())  # CI runs its test command
    repo.write("tests/test_x.py", "def test_x():\n    pass\n")
    repo.commit("initial")
    repo.write("docs/notes.md", "second commit\n")
    repo.commit("second")
    return repo


def branch(repo: Repo, name: str = "feature", **files: str) -> None:
    repo.git("checkout", "-q", "-b", name)
    for relative, text in files.items():
        repo.write(relative.replace("__", "/"), text)
    repo.commit(f"work on {name}")


EVERY_MODEL = {"run-all-models": True}  # shared code sets one parameter that every model's workflow runs on


@pytest.mark.parametrize(("touched", "models", "parameters"), [
    ({"abalone_model__model.yml": "name: changed\n"}, ["abalone_model"], {"run-abalone_model": True}),
    ({"abalone_model__notes.md": "x\n", "churn_model__model.yml": "name: changed\n"}, ["abalone_model", "churn_model"],
     {"run-abalone_model": True, "run-churn_model": True}),
    ({"README.md": "new\n", "tests__test_y.py": "\n", "docs__notes.md": "\n"}, [], {}),
    ({"modelops__config.py": "X = 2\n"}, list(MODELS), EVERY_MODEL),
    ({"environment.yml": "name: other\n"}, list(MODELS), EVERY_MODEL),
    ({"notebooks__templates__deploy.ipynb": "{}\n"}, list(MODELS), EVERY_MODEL),
    ({"abalone_model__model.yml": "name: changed\n", "modelops__config.py": "X = 2\n"}, list(MODELS),
     {"run-abalone_model": True, **EVERY_MODEL}),
], ids=["one-model", "both-models", "readme-and-tests-only", "shared-library", "environment", "templates",
        "model-and-shared"])
def test_feature_branch_selects_the_models_it_touches(tmp_path, touched, models, parameters):
    repo = project(tmp_path)
    merge_base = repo.git("rev-parse", "HEAD")
    branch(repo, **touched)
    found = project_changes(repo.path, "main")
    assert (found.how, found.compared, found.head) == ("merge-base", merge_base, repo.git("rev-parse", "HEAD"))
    assert found.models == models
    assert found.parameters == parameters
    assert sorted(found.files) == sorted(path.replace("__", "/") for path in touched)
    assert found.warnings == []


def test_main_moving_on_does_not_select_its_changes_on_the_branch(tmp_path):
    repo = project(tmp_path)
    branch(repo, **{"abalone_model__model.yml": "name: changed\n"})
    repo.git("checkout", "-q", "main")
    repo.write("churn_model/model.yml", "name: changed on main\n")
    repo.commit("main moves on")
    repo.git("checkout", "-q", "feature")
    assert project_changes(repo.path, "main").models == ["abalone_model"]  # merge base, not main's tip


def test_one_git_diff_for_all_models(tmp_path, monkeypatch):
    repo = project(tmp_path, models=("a_model", "b_model", "c_model"))
    branch(repo, **{"a_model__model.yml": "x\n", "c_model__model.yml": "y\n"})
    calls = []
    real_git = changes_module.git
    monkeypatch.setattr(changes_module, "git", lambda *args, **kw: calls.append(args) or real_git(*args, **kw))
    assert project_changes(repo.path, "main").models == ["a_model", "c_model"]
    assert sum("diff" in args for args in calls) == 1


@pytest.mark.parametrize("squash", [False, True], ids=["merge-commit", "squash-merge"])
def test_merge_to_main_selects_the_branch_models_and_deploy_finds_the_reviewed_package(tmp_path, home, squash):
    from modelops.backends.local.registry import LocalRegistry
    from modelops.config import load_model_config
    from modelops.deploy import select_package
    from modelops.lineage import model_lineage
    from tests.test_registry_contract import training

    repo = make_project(tmp_path / "project", models=MODELS)
    repo.write("README.md", "# project\n")
    repo.commit("readme on main")
    branch(repo, **{"abalone_model__notes.md": "why this change\n"})
    repo.write("abalone_model/more.md", "and another commit\n")
    repo.commit("second commit on the branch")
    # What the branch pipeline's train job registers, and a reviewer approves.
    registry = LocalRegistry(home / "registry.db")
    package = registry.register("abalone-model", training=training("job-1"), metrics={"rmse": 2.1},
                                data_sha256="d" * 64, dataset_id="ds",
                                lineage=model_lineage(repo.path / "abalone_model"))
    registry.approve("abalone-model", package.version, by="alice")

    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", *(["--squash"] if squash else ["--no-ff", "-m", "merge feature"]), "feature")
    if squash:
        repo.commit("squashed feature")
    found = project_changes(repo.path, "main")
    assert found.how == "first-parent" and found.models == ["abalone_model"]
    assert found.compared == repo.git("rev-parse", "HEAD~1")
    assert sorted(found.files) == ["abalone_model/more.md", "abalone_model/notes.md"]
    assert any("only the last commit (HEAD~1..HEAD) is compared" in w for w in found.warnings)
    chosen = select_package(registry, load_model_config(repo.path / "abalone_model"))
    assert chosen.version == package.version


def test_first_commit_compares_with_the_empty_tree(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write("abalone_model/model.yml", "name: a\n")
    repo.write("README.md", "# x\n")
    repo.commit("first")
    found = project_changes(repo.path, "main")
    assert (found.how, found.compared) == ("empty-tree", EMPTY_TREE)
    assert EMPTY_TREE == repo.git("hash-object", "-t", "tree", "/dev/null")
    assert sorted(found.files) == ["README.md", "abalone_model/model.yml"]
    assert found.models == ["abalone_model"] and "first commit" in found.warnings[0]


def test_deleted_model_folder_is_reported_removed_and_not_trained(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "retire-churn")
    repo.git("rm", "-q", "-r", "churn_model")
    repo.commit("retire churn")
    found = project_changes(repo.path, "main")
    assert found.removed == ["churn_model"] and found.models == [] and found.renamed == {}
    assert "churn_model/model.yml" in found.files  # deleted files count as changes, as in the orb
    assert found.parameters == {}  # the mapping, generated from the folders that exist, no longer names it


def test_deleted_model_folder_with_a_stale_mapping_warns(tmp_path):
    from ci.circleci import generate

    repo = project(tmp_path)
    generate(repo.path)
    repo.commit("CircleCI config for both models")
    repo.git("checkout", "-q", "-b", "retire-churn")
    repo.git("rm", "-q", "-r", "churn_model")
    repo.commit("retire churn, forgetting to regenerate the config")
    found = project_changes(repo.path, "main")
    assert found.parameters == {"run-churn_model": True}  # what CircleCI would pass on
    assert found.models == [] and found.removed == ["churn_model"]
    assert any("still names run-churn_model" in w and "circleci generate" in w for w in found.warnings)


def test_renamed_model_folder_trains_under_the_new_name(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "rename")
    repo.git("mv", "churn_model", "telco_churn_model")
    repo.commit("rename")
    found = project_changes(repo.path, "main")
    assert found.models == ["telco_churn_model"]
    assert found.removed == ["churn_model"] and found.renamed == {"churn_model": "telco_churn_model"}
    # git reports a rename under its new name only: the orb never sees the old paths.
    assert sorted(found.files) == ["telco_churn_model/model.yml", "telco_churn_model/train_register.ipynb"]


def pushed_project(tmp_path):
    """A project whose main is pushed to a bare origin: commits after it are the ones a push would build."""
    repo = project(tmp_path)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "-u", "origin", "main")
    return repo


def test_a_shared_change_in_an_earlier_commit_names_the_models_it_misses(tmp_path):
    repo = pushed_project(tmp_path)
    repo.write("modelops/config.py", "X = 2\n")
    repo.commit("shared code: every model")
    repo.write("abalone_model/model.yml", "name: changed\n")
    repo.commit("then one model")
    found = project_changes(repo.path, "main")
    assert found.models == ["abalone_model"] and found.parameters == {"run-abalone_model": True}
    assert any("the changes to churn_model in the earlier ones are missed" in w for w in found.warnings)


def test_several_commits_pushed_to_main_at_once_is_reported(tmp_path):
    repo = pushed_project(tmp_path)
    repo.write("abalone_model/model.yml", "name: changed\n")
    repo.commit("change the model")
    repo.write("docs/notes.md", "docs\n")
    repo.commit("then the docs")
    found = project_changes(repo.path, "main")
    assert found.models == []  # what the orb decides: only the last commit is diffed
    # Against origin/main (still behind), CircleCI would still compare HEAD~1 once main is pushed.
    assert project_changes(repo.path, "origin/main").how == "first-parent"
    assert any("2 commits since" in w and "the changes to abalone_model in the earlier ones are missed" in w
               for w in found.warnings)
    repo.git("push", "-q")
    assert not any("commits since" in w for w in project_changes(repo.path, "main").warnings)
    # A merge commit is one commit on main's first-parent line, and HEAD~1..HEAD covers its whole branch.
    branch(repo, **{"churn_model__a.md": "1\n"})
    repo.write("churn_model/b.md", "2\n")
    repo.commit("second commit on the branch")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "feature")
    merged = project_changes(repo.path, "main")
    assert merged.models == ["churn_model"] and not any("commits since" in w for w in merged.warnings)


def test_new_branch_without_commits_of_its_own_is_reported(tmp_path):
    repo = project(tmp_path)
    repo.write("churn_model/model.yml", "name: changed\n")
    repo.commit("main changes churn")
    repo.git("checkout", "-q", "-b", "feature")
    found = project_changes(repo.path, "main")
    assert found.how == "first-parent" and found.models == ["churn_model"]  # main's last change, as the orb does
    assert "branch feature has no commits of its own" in found.warnings[0]


def test_unknown_base_revision_says_how_to_fix(tmp_path):
    from modelops.errors import ChangeDetectionError

    repo = project(tmp_path)
    with pytest.raises(ChangeDetectionError, match=r"base revision 'develop' does not exist.*git fetch origin"):
        project_changes(repo.path, "develop")
    with pytest.raises(ChangeDetectionError, match=r"base revision 'HEAD:README.md' does not exist"):
        project_changes(repo.path, "HEAD:README.md")  # a blob, not a commit
    repo.git("checkout", "-q", "--orphan", "unrelated")
    repo.commit("no shared history")
    with pytest.raises(ChangeDetectionError, match=r"main and HEAD share no history"):
        project_changes(repo.path, "main")


def test_a_repository_without_commits_says_commit_first(tmp_path):
    from modelops.errors import ChangeDetectionError

    repo = Repo(tmp_path / "empty")
    with pytest.raises(ChangeDetectionError, match=r"has no commit yet. Fix: commit first"):
        project_changes(repo.path, "main")


def test_orb_mapping_semantics():
    mapping = parse_mapping("""
        # comment lines and blank lines are skipped
        a_model/.*        run-a   true
        docs/.*           level   1
        docs/.*           label   release
        docs/guide\\.md   level   "two"
        shared/.*         run-a   false
    """)
    files = ["a_model/x.py", "docs/guide.md", "shared/lib.py", "xa_model/y.py"]
    assert orb_parameters(files, mapping) == {"run-a": False, "level": "two", "label": "release"}
    assert orb_parameters(["xa_model/y.py", "a_model"], mapping) == {}  # the regex must match the whole path
    assert orb_parameters(files, mapping, exclude=["shared/.*", "docs/guide\\.md"]) == {"run-a": True}
    assert orb_parameters(["docs/a"], parse_mapping("docs/.* x NaN\ndocs/.* y [1]")) == {"x": "NaN", "y": [1]}
    with pytest.raises(Exception, match="expected 'REGEX PARAM VALUE'"):
        parse_mapping("a_model/.* run-a")


def test_orb_word_splits_paths_with_spaces():
    changed = [FileChange("M", "my model/a.py"), FileChange("R", "new/b.py", old_path="old/b.py")]
    assert orb_files(changed) == ["my", "model/a.py", "new/b.py"]


def test_changed_command_prints_models_and_json(tmp_path):
    repo = project(tmp_path)
    branch(repo, **{"abalone_model__model.yml": "name: changed\n"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    text = subprocess.run([sys.executable, "-m", "ci", "changed", "--base", "main"], cwd=repo.path, env=env,
                          capture_output=True, text=True, check=True).stdout
    assert "changed models: abalone_model" in text and 'pipeline parameters: {"run-abalone_model": true}' in text
    out = subprocess.run([sys.executable, "-m", "ci", "changed", "--json"], cwd=repo.path, env=env,
                         capture_output=True, text=True, check=True).stdout
    answer = json.loads(out)
    assert answer["models"] == ["abalone_model"] and answer["base"] == "main"
    assert answer["parameters"] == {"run-abalone_model": True}
