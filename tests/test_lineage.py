"""Lineage on real git repositories: the model folder's tree hash survives squash merges."""

from __future__ import annotations

from modelops.review.lineage import committed_tree_hash, model_lineage, working_tree_hash
from tests.support.gitrepo import Repo


def test_clean_folder_hash_equals_the_committed_tree(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write("m/model.yml", "a: 1\n")
    repo.write("other/x.txt", "x\n")
    commit = repo.commit()
    lineage = model_lineage(repo.path / "m", notebook_artifact="m/train_register.html")
    assert lineage.tree_hash == repo.tree("m") == committed_tree_hash(repo.path / "m")
    assert (lineage.git_commit, lineage.branch, lineage.dirty) == (commit, "main", False)
    assert lineage.model_folder == "m" and lineage.notebook_artifact == "m/train_register.html"


def test_uncommitted_change_gives_the_tree_it_would_commit(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write("m/model.yml", "a: 1\n")
    repo.commit()
    repo.write("m/model.yml", "a: 2\n")
    lineage = model_lineage(repo.path / "m")
    assert lineage.dirty and lineage.tree_hash != repo.tree("m")
    repo.commit()
    assert lineage.tree_hash == repo.tree("m")  # committing exactly that content gives the same hash
    assert repo.git("status", "--porcelain") == ""  # and computing it touched neither index nor tree


def test_ignored_files_do_not_change_the_hash(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write(".gitignore", ".ipynb_checkpoints/\n")
    repo.write("m/model.yml", "a: 1\n")
    repo.commit()
    repo.write("m/.ipynb_checkpoints/x.ipynb", "{}")
    assert working_tree_hash(repo.path / "m") == repo.tree("m")


def test_squash_merge_keeps_the_folder_tree(tmp_path):
    repo = Repo(tmp_path / "repo")
    repo.write("m/model.yml", "a: 1\n")
    repo.commit("base")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("m/model.yml", "a: 2\n")
    repo.commit("one")
    repo.write("m/notes.md", "why\n")
    feature_commit = repo.commit("two")
    trained = model_lineage(repo.path / "m")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--squash", "feature")
    squashed = repo.commit("squash")
    assert squashed != feature_commit
    assert trained.tree_hash == repo.tree("m") == model_lineage(repo.path / "m").tree_hash


def test_ci_branch_and_build_url_come_from_circleci(tmp_path, monkeypatch):
    repo = Repo(tmp_path / "repo")
    repo.write("m/model.yml", "a: 1\n")
    commit = repo.commit()
    repo.git("checkout", "-q", "--detach", commit)
    assert model_lineage(repo.path / "m").branch is None
    monkeypatch.setenv("CIRCLE_BRANCH", "feature/x")
    monkeypatch.setenv("CIRCLE_BUILD_URL", "https://app.circleci.com/jobs/1")
    lineage = model_lineage(repo.path / "m")
    assert (lineage.branch, lineage.ci_build_url) == ("feature/x", "https://app.circleci.com/jobs/1")


def test_a_folder_outside_a_repository_has_no_lineage(tmp_path):
    (tmp_path / "m").mkdir()
    lineage = model_lineage(tmp_path / "m")
    assert lineage.tree_hash is None and lineage.git_commit is None
