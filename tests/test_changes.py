"""Change detection on real git repositories: the path-filtering orb's decision, its traps, and lineage."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ci import changes as changes_module
from ci.changes import EMPTY_TREE, checkout_tree, diff, project_changes
from ci.circleci import generate
from ci.orb.decision import orb_parameters
from ci.orb.mapping import SETUP_CONFIG, parse_mapping
from ci.orb.words import FileChange, expand_pattern, grep_lines, orb_words, shown, split_words, unquote
from modelops.errors import ChangeDetectionError
from tests.support import orbscript
from tests.support.gitrepo import Repo, make_project
from tests.support.paths import ROOT

MODELS = ("abalone_model", "churn_model")


@pytest.fixture(autouse=True)
def not_in_circleci(monkeypatch):
    """These tests build their own branches: CircleCI's own $CIRCLE_BRANCH (when they run there) must not leak in."""
    monkeypatch.delenv("CIRCLE_BRANCH", raising=False)


def project(tmp_path, models=MODELS, pushed: bool = False) -> Repo:
    """Model folders (only their files matter here), shared code, README, tests and the generated CircleCI config,
    committed on main; ``pushed``: main pushed to a bare origin (``tmp_path/remote.git``) that it tracks.

    Built once per test process and copied: building costs about three times the copy.
    """
    template = _template(tuple(models), pushed)
    for name in ("repo", "remote.git"):
        if (template / name).exists():
            shutil.copytree(template / name, tmp_path / name, symlinks=True)
    repo = Repo(tmp_path / "repo")
    if pushed:
        repo.git("remote", "set-url", "origin", str(tmp_path / "remote.git"))
    return repo


@functools.cache
def _template(models: tuple[str, ...], pushed: bool) -> Path:
    where = Path(tempfile.mkdtemp(prefix="test-changes-"))
    atexit.register(shutil.rmtree, where, True)
    repo = Repo(where / "repo")
    for model in models:
        repo.write(f"{model}/model.yml", f"name: {model}\n")
        repo.write(f"{model}/train_register.ipynb", "{}\n")
    repo.write("modelops/config.py", "X = 1\n")
    repo.write("environment.yml", "name: modelops\n")
    repo.write("README.md", (ROOT / "README.md").read_text())  # CI runs its test command
    repo.write("tests/test_x.py", "def test_x():\n    pass\n")
    generate(repo.path)
    repo.commit("initial")
    repo.write("docs/notes.md", "second commit\n")
    repo.commit("second")
    if pushed:
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(where / "remote.git")], check=True)
        repo.git("remote", "add", "origin", str(where / "remote.git"))
        repo.git("push", "-q", "-u", "origin", "main")
    return where


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
    real_git = changes_module._git
    monkeypatch.setattr(changes_module, "_git", lambda *args, **kw: calls.append(args) or real_git(*args, **kw))
    assert project_changes(repo.path, "main").models == ["a_model", "c_model"]
    assert sum("diff" in args for args in calls) == 1


@pytest.mark.parametrize("squash", [False, True], ids=["merge-commit", "squash-merge"])
def test_merge_to_main_selects_the_branch_models_and_deploy_finds_the_reviewed_package(tmp_path, home, squash):
    from modelops.backends.local.registry import LocalRegistry
    from modelops.config import load_model_config
    from modelops.release.deploy import select_package
    from modelops.review.lineage import model_lineage
    from tests.support.registry import training

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
    assert found.models == ["abalone_model"] and any("first commit" in w for w in found.warnings)


def test_without_a_committed_setup_config_says_circleci_runs_nothing(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write("abalone_model/model.yml", "name: a\n")
    repo.commit("first")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("abalone_model/notes.md", "x\n")
    repo.commit("a model change")
    found = project_changes(repo.path, "main")
    assert found.models == ["abalone_model"]  # what the generated config would select
    assert found.warnings == [f"HEAD has no {SETUP_CONFIG}: CircleCI finds no config for this commit and runs "
                              f"nothing. Shown: what the generated config would select. Fix: python -m ci circleci "
                              f"generate, then commit .circleci/."]


def test_deleted_model_folder_is_reported_removed_and_not_trained(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "retire-churn")
    repo.git("rm", "-q", "-r", "churn_model")
    generate(repo.path)
    repo.commit("retire churn")
    found = project_changes(repo.path, "main")
    assert found.removed == ["churn_model"] and found.models == [] and found.renamed == {}
    assert "churn_model/model.yml" in found.files  # deleted files count as changes, as in the orb
    assert found.parameters == {}  # the mapping, generated from the folders that exist, no longer names it
    assert found.warnings == []


def test_deleted_model_folder_with_a_stale_config_names_the_jobs_that_fail_on_the_branch_and_on_main(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "retire-churn")
    repo.git("rm", "-q", "-r", "churn_model")
    repo.commit("retire churn, forgetting to regenerate the config")
    found = project_changes(repo.path, "main")
    assert found.parameters == {"run-churn_model": True}  # what CircleCI passes on: the deleted files changed
    assert found.models == [] and found.removed == ["churn_model"]
    [warning] = found.warnings
    assert warning == (
        "churn_model/ is gone, but the committed .circleci/ still maps and runs it: this push sets run-churn_model "
        "(its deleted files are changes), so the continuation runs the churn_model workflow, whose "
        "train-churn_model, request-deployment, approve-churn_model run on a folder that no longer exists, and "
        "train-churn_model fails. Fix: python -m ci circleci generate, then commit .circleci/.")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "merge", "retire-churn")
    on_main = project_changes(repo.path, "main")
    assert any("whose deploy-churn_model, request-promotion, promote-churn_model run on a folder that no longer exists"
               in w for w in on_main.warnings)
    # A later push that does not touch churn_model/ no longer sets the parameter: the mapping is only stale.
    repo.write("docs/more.md", "x\n")
    repo.commit("docs")
    assert any("the committed mapping still names run-churn_model, but there is no model folder churn_model/" in w
               for w in project_changes(repo.path, "main").warnings)


def test_renamed_model_folder_trains_under_the_new_name(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "rename")
    repo.git("mv", "churn_model", "telco_churn_model")
    generate(repo.path)
    repo.commit("rename")
    found = project_changes(repo.path, "main")
    assert found.models == ["telco_churn_model"] and found.warnings == []
    assert found.removed == ["churn_model"] and found.renamed == {"churn_model": "telco_churn_model"}
    # git reports a rename under its new name only: the orb never sees the old paths.
    assert sorted(found.files) == [".circleci/config.yml", ".circleci/dynamic_config.yml",
                                   "telco_churn_model/model.yml", "telco_churn_model/train_register.ipynb"]


def test_renamed_model_folder_without_regenerating_selects_nothing_and_says_why(tmp_path):
    repo = project(tmp_path)
    repo.git("checkout", "-q", "-b", "rename")
    repo.git("mv", "churn_model", "telco_churn_model")
    repo.commit("rename, forgetting the config")
    found = project_changes(repo.path, "main")
    assert found.parameters == {} and found.models == []  # the old name is not listed, the new one not mapped
    assert found.warnings == [
        "model folder telco_churn_model/ has no line in the committed mapping, so CircleCI never selects it. "
        "Fix: python -m ci circleci generate, then commit .circleci/.",
        "the committed mapping still names run-churn_model, but there is no model folder churn_model/ (deleted or "
        "renamed?). Fix: python -m ci circleci generate, then commit .circleci/."]


def pushed_project(tmp_path):
    """A project whose main is pushed to a bare origin: commits after it are the ones a push would build."""
    return project(tmp_path, pushed=True)


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
    assert found.how == "first-parent" and found.models == ["churn_model"]  # the tip's own commit, as the orb does
    assert found.warnings == [
        f"branch feature has no commits of its own (HEAD {found.head[:12]} is already in main): the orb compares HEAD "
        f"with its first parent, so it selects what the branch tip's own commit changed (churn_model), not what this "
        f"branch will change. Commit on the branch before pushing it, or expect that selection."]


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


def test_the_orbs_mapping_matches_whole_paths_and_the_last_matching_line_wins():
    mapping = parse_mapping("""
        # comment lines and blank lines are skipped
        a_model/.*        run-a   true
        docs/.*           level   1
        docs/.*           label   release
        docs/guide\\.md   level   "two"
        shared/.*\tstack\t[1]
        shared/.*         run-a   false
    """)
    files = ["a_model/x.py", "docs/guide.md", "shared/lib.py", "xa_model/y.py"]
    assert orb_parameters(files, mapping) == {"run-a": False, "level": "two", "label": "release", "stack": [1]}
    assert orb_parameters(["xa_model/y.py", "a_model"], mapping) == {}  # the regex must match the whole path
    assert orb_parameters(files, mapping, exclude=["shared/.*", "docs/guide\\.md"]) == {"run-a": True}
    assert orb_parameters(["docs/a"], parse_mapping("docs/.* x x-1.0\ndocs/.* y 1.5")) == {"x": "x-1.0", "y": 1.5}
    # jq reads these although they are not JSON, and the orb writes them into its JSON as they stand.
    for value in ("NaN", "Infinity", "01", ".5", "+1"):
        with pytest.raises(ChangeDetectionError, match=f"mapping value '{re.escape(value)}' is not JSON"):
            orb_parameters(["docs/a"], parse_mapping(f"docs/.* x {value}"))
    with pytest.raises(ChangeDetectionError, match="expected 'REGEX PARAM VALUE'"):
        parse_mapping("a_model/.* run-a")
    # Fields split at spaces and tabs only (bash's read), lines end at \n only.
    assert [m.pattern for m in parse_mapping("a\u00a0b/.* p true\r\n")] == ["a\u00a0b/.*"]
    with pytest.raises(ChangeDetectionError, match="is not a regular expression"):
        orb_parameters(["docs/a"], parse_mapping("docs/(.* x true"))


@pytest.mark.slow
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


# --- What CircleCI's checkout sees: scenarios pushed to a bare origin, decided by the orb's own script ----------


@dataclass(frozen=True)
class Pushed:
    """A branch pushed to the bare origin: what CircleCI's setup job checks out and decides on."""

    repo: Repo
    origin: Path
    branch: str
    sha: str


def push(repo: Repo, branch: str = "feature") -> Pushed:
    repo.git("push", "-q", "-u", "origin", branch)
    return Pushed(repo, Path(repo.git("remote", "get-url", "origin")), branch, repo.git("rev-parse", "HEAD"))


def write_named(repo: Repo, name: bytes, content: bytes = b"x\n") -> None:
    """A file whose name is any bytes (a newline, a byte that is not UTF-8)."""
    path = os.path.join(bytes(repo.path), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as file:
        file.write(content)


def stale_local_main(tmp_path) -> Pushed:
    """Someone else pushed a churn change; the branch starts from origin/main, the local main is behind."""
    repo = pushed_project(tmp_path)
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", repo.git("remote", "get-url", "origin"), str(other)], check=True)
    (other / "churn_model" / "model.yml").write_text("name: changed elsewhere\n")
    for args in (["add", "-A"], ["-c", "user.name=O", "-c", "user.email=o@example.com", "commit", "-q", "-m", "churn"],
                 ["push", "-q"]):
        subprocess.run(["git", *args], cwd=other, check=True)
    repo.git("fetch", "-q")
    repo.git("checkout", "-q", "-b", "feature", "origin/main")
    repo.write("abalone_model/model.yml", "name: changed\n")
    repo.commit("abalone")
    return push(repo)


def unpushed_local_main(tmp_path) -> Pushed:
    """A churn commit on the local main, not pushed; the branch starts from the local main."""
    repo = pushed_project(tmp_path)
    repo.write("churn_model/model.yml", "name: changed on main\n")
    repo.commit("churn, not pushed")
    branch(repo, **{"abalone_model__model.yml": "name: changed\n"})
    return push(repo)


def uncommitted_mapping(tmp_path) -> Pushed:
    """A new model folder committed, the CircleCI config regenerated for it but not committed."""
    repo = pushed_project(tmp_path)
    branch(repo, **{"fraud_model__model.yml": "name: fraud_model\n"})
    generate(repo.path)
    return push(repo)


def named(name: bytes) -> Callable[[Path], Pushed]:
    def build(tmp_path) -> Pushed:
        repo = pushed_project(tmp_path)
        repo.git("checkout", "-q", "-b", "feature")
        write_named(repo, name)
        repo.commit("a file with an unusual name")
        return push(repo)

    build.__doc__ = f"A branch adding one file named {name!r}."
    return build


def no_own_commits(tmp_path) -> Pushed:
    """main changes abalone, then churn; a branch made at the abalone commit, pushed without a commit of its own."""
    repo = pushed_project(tmp_path)
    repo.write("abalone_model/model.yml", "name: changed\n")
    repo.commit("abalone")
    repo.write("churn_model/model.yml", "name: changed\n")
    repo.commit("churn")
    repo.git("push", "-q")
    repo.git("checkout", "-q", "-b", "feature", "main~1")
    return push(repo)


#: A setup config written by hand: exclude, values of several kinds, the last line winning, a '|' alternation.
HAND_WRITTEN_MAPPING = """\
a_model/.* run-a true
docs/.* level 1
docs/.*\tlabel\trelease
docs/guide\\.md level "two"
shared/.* run-a false
x|docs/notes\\.md alt [1,2]
tests/.* tested true
"""


def hand_written_mapping(tmp_path) -> Pushed:
    """A branch whose committed setup config carries a hand-written mapping and exclude lines."""
    repo = pushed_project(tmp_path)
    repo.git("checkout", "-q", "-b", "feature")
    config = {"version": 2.1, "setup": True, "orbs": {"path-filtering": "circleci/path-filtering@2.1.0"},
              "workflows": {"select": {"jobs": [{"path-filtering/filter": {
                  "base-revision": "main", "config-path": ".circleci/dynamic_config.yml",
                  "mapping": HAND_WRITTEN_MAPPING, "exclude": "shared/.*\ntests/.*\n"}}]}}}
    (repo.path / SETUP_CONFIG).write_text(yaml.safe_dump(config))
    for name in ("a_model/x.py", "docs/guide.md", "docs/notes.md", "shared/lib.py", "tests/test_y.py"):
        repo.write(name, "x\n")
    repo.commit("a hand-written mapping")
    return push(repo)


def deleted_model(tmp_path) -> Pushed:
    """A branch deleting churn_model/ without regenerating the CircleCI config."""
    repo = pushed_project(tmp_path)
    repo.git("checkout", "-q", "-b", "feature")
    repo.git("rm", "-q", "-r", "churn_model")
    repo.commit("retire churn, forgetting to regenerate .circleci/")
    return push(repo)


@dataclass(frozen=True)
class Scenario:
    build: Callable[[Path], Pushed]
    orb: dict  # the orb's answer: the pipeline parameters its script wrote
    models: list[str]  # the model folders CircleCI then runs
    warning: str | None  # a part of the warning that says why (None: no warning at all)


NOT_TOUCHED = "where the changed files select churn_model"
#: The orb's answers: obtained by running create-parameters.sh of CircleCI-Public/path-filtering-orb at tag v2.1.0
#: (commit a0040264a55a2f69380bbba465ee8e502adc3ec0) on each scenario, as test_the_orbs_own_script_gives_these_answers
#: does when PATH_FILTERING_ORB points to a clone of it: a CircleCI-like checkout (a clone of the bare origin,
#: the branch checked out at the pushed commit), the mapping and base revision of the committed setup config,
#: `bash -eo pipefail`, LC_ALL=C.UTF-8, with bash 5.2.15, GNU grep 3.8 (PCRE2), jq 1.6, git 2.39.5 (2026-11-30).
SCENARIOS = {
    "stale-local-main": Scenario(stale_local_main, {"run-abalone_model": True}, ["abalone_model"],
                                 "your local main and origin/main differ (1 commit(s) of origin/main not pulled)"),
    "unpushed-local-main": Scenario(unpushed_local_main, {"run-abalone_model": True, "run-churn_model": True},
                                    ["abalone_model", "churn_model"],
                                    "the 1 commit(s) of main not pushed count as this branch's changes"),
    "uncommitted-mapping": Scenario(uncommitted_mapping, {}, [],
                                    "with the working copy's, it would select fraud_model instead of no model"),
    "double-quote": Scenario(named(b'churn_model/say "hi".md'), {}, [], NOT_TOUCHED),
    "backslash": Scenario(named(b"churn_model/a\\b.md"), {}, [], NOT_TOUCHED),
    "newline": Scenario(named(b"churn_model/a\nb.md"), {}, [], NOT_TOUCHED),
    "lone-star": Scenario(named(b"*"), {"run-all-models": True}, ["abalone_model", "churn_model"],
                          "CircleCI selects abalone_model, churn_model where the changed files select no model"),
    "space": Scenario(named(b"docs/x churn_model/y.md"), {"run-churn_model": True}, ["churn_model"],
                      "CircleCI selects churn_model where the changed files select no model"),
    "non-breaking-space": Scenario(named("docs/x\u00a0churn_model/y.md".encode()), {}, [], None),
    "not-utf8": Scenario(named(b"churn_model/\xff.md"), {}, [], "is not UTF-8"),
    "no-own-commits": Scenario(no_own_commits, {"run-abalone_model": True}, ["abalone_model"],
                               "selects what the branch tip's own commit changed (abalone_model)"),
    "deleted-model-folder": Scenario(deleted_model, {"run-churn_model": True}, [],
                                     "runs the churn_model workflow, whose train-churn_model"),
    "hand-written-mapping": Scenario(hand_written_mapping, {"run-a": True, "level": "two", "label": "release",
                                                            "alt": [1, 2]}, [],
                                     "model folder abalone_model/ has no line in the committed mapping"),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_decides_as_the_orb_does_in_circleci_checkout(tmp_path, name):
    scenario = SCENARIOS[name]
    pushed = scenario.build(tmp_path)
    found = project_changes(pushed.repo.path)  # the base and mapping the committed config names
    assert found.parameters == scenario.orb
    assert found.models == scenario.models
    if scenario.warning is None:
        assert found.warnings == []
    else:
        assert any(scenario.warning in warning for warning in found.warnings), found.warnings
    json.dumps(found.to_json())  # whatever the names' bytes


@pytest.mark.slow
@pytest.mark.skipif(orbscript.available() is not None, reason=f"the orb's script: {orbscript.available()}")
@pytest.mark.parametrize("name", SCENARIOS)
def test_the_orbs_own_script_gives_these_answers(tmp_path, name):
    pushed = SCENARIOS[name].build(tmp_path)
    assert orbscript.run_orb(pushed.origin, pushed.branch, pushed.sha, tmp_path / "ci") == SCENARIOS[name].orb


def test_the_local_main_is_what_counts_without_a_remote_and_origin_main_with_one(tmp_path):
    pushed = stale_local_main(tmp_path)
    found = project_changes(pushed.repo.path)
    assert (found.base, found.base_ref) == ("main", "origin/main")
    assert found.compared == pushed.repo.git("rev-parse", "origin/main")
    # Asked for the local main by its full name: compared with it, as before (and the orb would not).
    local = project_changes(pushed.repo.path, "refs/heads/main")
    assert local.base_ref == "refs/heads/main" and local.models == ["abalone_model", "churn_model"]
    pushed.repo.git("remote", "remove", "origin")
    assert project_changes(pushed.repo.path).base_ref == "main"


def test_a_config_naming_another_base_branch_is_followed_to_the_remote(tmp_path):
    repo = pushed_project(tmp_path)
    repo.git("push", "-q", "origin", "main:trunk")
    repo.git("fetch", "-q")
    repo.git("checkout", "-q", "-b", "feature")
    config = repo.path / SETUP_CONFIG
    config.write_text(config.read_text().replace("base-revision: main", "base-revision: trunk"))
    repo.write("abalone_model/model.yml", "name: changed\n")
    repo.commit("compare with trunk")
    found = project_changes(repo.path)
    assert (found.base, found.base_ref, found.models) == ("trunk", "origin/trunk", ["abalone_model"])
    assert found.compared == repo.git("rev-parse", "origin/trunk")


@pytest.mark.slow
def test_names_the_orb_cannot_read_do_not_crash_the_command(tmp_path):
    pushed = named(b"churn_model/\xff \"x\".md")(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "ci", "changed"], cwd=pushed.repo.path, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert b"changed models: none" in done.stdout
    assert (b'"churn_model/\\377 \\"x\\".md": git lists it quoted, and the orb reads the quotes and backslashes '
            b'too: "churn_model/\\377 \\"x\\".md"; bash splits it into 2 words: "churn_model/\\377 and \\"x\\".md"; '
            b'it is not UTF-8') in done.stderr
    answer = json.loads(subprocess.run([sys.executable, "-m", "ci", "changed", "--json"], cwd=pushed.repo.path,
                                       env=env, capture_output=True, check=True).stdout)
    assert answer["files"] == ['"churn_model/\udcff', '\\"x\\".md"']  # the orb's words, git's quotes in them
    assert answer["paths"] == ['churn_model/\udcff "x".md']  # the file itself


# --- How the orb's bash reads names: checked against git, bash and grep themselves -------------------------

ODD_NAMES = [b'a"b', b"a\\b", b"a\nb", b"a\tb", b"caf\xc3\xa9", b"\xff", b"a b", b"a\x7fb", b"a\x01b", b"-n"]


def test_unquote_and_shown_agree_with_git(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.commit("empty")
    for name in ODD_NAMES:
        write_named(repo, b"dir/" + name)
    repo.commit("odd names")
    listed = subprocess.run(["git", "-c", "core.quotepath=false", "diff", "--name-only", "HEAD~1", "HEAD"],
                            cwd=repo.path, capture_output=True, check=True).stdout.decode("utf-8", "surrogateescape")
    raw = subprocess.run(["git", "diff", "--name-only", "-z", "HEAD~1", "HEAD"], cwd=repo.path, capture_output=True,
                         check=True).stdout.decode("utf-8", "surrogateescape")
    default = subprocess.run(["git", "-c", "core.quotepath=true", "diff", "--name-only", "HEAD~1", "HEAD"],
                             cwd=repo.path, capture_output=True, check=True).stdout.decode()
    assert [unquote(line) for line in listed.splitlines()] == raw.rstrip("\0").split("\0")
    assert [shown(name) for name in raw.rstrip("\0").split("\0")] == default.splitlines()
    changes = diff(repo.path, "HEAD~1", "HEAD")
    assert [c.path for c in changes] == raw.rstrip("\0").split("\0")
    assert [c.listed for c in changes] == listed.splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("word", ["-n", "-e", "-E", "-neE", "-nx", "-x", "-", "--", "a\\nb", "-e\\n"])
def test_echo_lines_are_bashs(word):
    printed = subprocess.run(["bash", "-c", 'echo "$1"', "_", word], capture_output=True, check=True).stdout
    assert grep_lines(word) == printed.decode().split("\n")[:-1]


#: Words checked against bash's own expansion: plain, escaped, hidden, brackets, ranges, unclosed, folders.
PATTERNS = ["*", "*/", "*/model.yml", "a*", "a\\*", "a\\\\*", "a?", "[.]*", ".*", "?ocs/*", "[!a]*", "[^a]*",
            "[a-c]*", "[c-a]*", "[]x]*", "[a", "a[", "docs/*/", "*/*.md", "-*", "abalone_model/[ab].md",
            "abalone_model/\\[ab\\].md", "abalone_model/[[]ab].md", "nothing/*", "d?cs/sub/*", "*.yml", "docs/[!s]*"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_pattern_expansion_is_bashs(tmp_path):
    repo = Repo(tmp_path / "repo")
    for name in ("a*", "ab", "a\\b", ".hidden", "docs/x.md", "docs/sub/y.md", "abalone_model/a.md",
                 "abalone_model/[ab].md", "abalone_model/b.md", "]x", "environment.yml", "-n"):
        write_named(repo, name.encode())
    repo.commit("files to expand patterns against")
    tree = checkout_tree(repo.path, "HEAD")
    for word in PATTERNS:
        expanded = subprocess.run(["bash", "-c", 'for i in $1; do printf "%s\\0" "$i"; done', "_", word],
                                  cwd=repo.path, capture_output=True, check=True).stdout.decode()
        assert expand_pattern(word, tree) == sorted(expanded.rstrip("\0").split("\0")), word
    # Not reproduced, and said so: classes in brackets, and what lies in .git or outside the checkout.
    assert [expand_pattern(word, tree) for word in ("[[:alpha:]]*", ".g*/*", "/etc/*", "../*")] == [None] * 4


def test_orb_words_split_quote_expand_and_explain():
    tree = {"": {".git": "git", "abalone_model": "tree", "environment.yml": "blob"}, "abalone_model": {}}
    changes = [FileChange("M", "my model/a.py"), FileChange("R", "new/b.py", old_path="old/b.py"),
               FileChange("A", 'x/"q".md', listed='"x/\\"q\\".md"'), FileChange("A", "*")]
    words, notes, unknown = orb_words(changes, lambda: tree)
    assert words == ["my", "model/a.py", "new/b.py", '"x/\\"q\\".md"', "abalone_model", "environment.yml"]
    assert notes == ["my model/a.py: bash splits it into 2 words: my and model/a.py",
                     '"x/\\"q\\".md": git lists it quoted, and the orb reads the quotes and backslashes too: '
                     '"x/\\"q\\".md"',
                     "*: bash expands * in the checkout into abalone_model, environment.yml"]
    assert not unknown
    assert split_words(" a\u00a0b\tc\n") == ["a\u00a0b", "c"]  # bash's IFS: not a non-breaking space


@pytest.mark.skipif(shutil.which("grep") is None, reason="grep is not installed")
@pytest.mark.parametrize("pattern", ["churn_model/.*", ".*\\.md", "churn.*md", "[^x]*", ".*", "[\\s\\S]*",
                                     "(churn_model/).*", ""])
def test_a_name_that_is_not_utf8_matches_as_in_grep(pattern):
    """grep -P in a UTF-8 locale matches no "^REGEX$" (no top-level '|') across a byte that is not UTF-8."""
    for name in (b"churn_model/\xff.md", b"churn_model/a.md"):
        done = subprocess.run(["grep", "-qP", f"^{pattern}$"], input=name + b"\n", capture_output=True,
                              env={**os.environ, "LC_ALL": orbscript.LOCALE})
        if done.returncode == 2:
            pytest.skip(f"grep -P does not run here: {done.stderr.decode(errors='replace')}")
        word = name.decode("utf-8", "surrogateescape")
        assert bool(orb_parameters([word], parse_mapping(f"{pattern or '()'} hit true"))) == (done.returncode == 0)


def test_a_pattern_with_a_bar_and_a_name_that_is_not_utf8_is_not_reproduced(tmp_path):
    from ci.changes import detect_changes

    pushed = named(b"churn_model/\xff.md")(tmp_path)
    found = detect_changes(pushed.repo.path, "main", parse_mapping("churn_model/.*|x run-churn_model true"),
                           model_parameters={"churn_model": "run-churn_model"})
    assert any("holds '|'" in w and "is not reproduced" in w and "may differ" in w for w in found.warnings)
