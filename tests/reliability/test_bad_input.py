"""Bad input end to end: each is refused with the problem and the fix, a non-zero exit, and nothing stored changes."""

from __future__ import annotations

import shutil

import pytest

from tests.support.gitrepo import make_project
from tests.support.paths import SHARED_DATA
from tests.support.projects import cli, edit_config, snapshot

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose abalone model has been gathered and trained once (v1 registered), with its home."""
    base = tmp_path_factory.mktemp("trained")
    repo = make_project(base / "project")
    env = {"MODELOPS_HOME": str(base / "home"), "MODELOPS_DATA_DIR": str(SHARED_DATA)}
    result = cli(repo.path, "run", "abalone_model", "--stage", "train", "--artifacts", str(base / "artifacts"),
                 env=env)
    assert result.returncode == 0, result.stderr
    return base


@pytest.fixture
def project(trained, tmp_path, home):
    """A copy of the trained project and its home (the ``home`` fixture points MODELOPS_HOME at the copy)."""
    shutil.copytree(trained / "home", home)
    shutil.copytree(trained / "project", tmp_path / "project")
    return tmp_path / "project"


@pytest.mark.parametrize(("change", "code", "message"), [
    (lambda r: r["data"].pop("target"), 2, "key 'data.target' is missing"),
    (lambda r: r["training"]["hyperparameters"].update(max_depth="deep"), 2, "must be integer"),
    (lambda r: r.update(problem_type="ranking"), 2, "is 'ranking', which is not one of"),
    (lambda r: r["training"]["hyperparameters"].update(tree_method="quantum"), 2,
     "xgboost rejected the hyperparameters"),
    (lambda r: r["quality"].update(auc={"min": 0.9}), 2, "'quality.auc' is not a metric of a regression model"),
    (lambda r: r.update(name="abalone model!"), 2, "not a valid SageMaker name"),
    (lambda r: r["data"].update(columns=r["data"]["columns"][:-2] + ["rings"]), 1,
     "has 9 columns but data.columns in model.yml lists 8"),
    (lambda r: r["data"].update(sha256="0" * 64), 1, "checksum mismatch"),
])
def test_bad_model_config_or_data_changes_nothing_stored(project, home, tmp_path, change, code, message):
    path = project
    before = snapshot(home / "store", home / "registry.db")
    edit_config(path / "abalone_model" / "model.yml", change)
    result = cli(path, "run", "abalone_model", "--stage", "train", "--force",
                 "--artifacts", str(tmp_path / "artifacts"))
    assert result.returncode == code, result.stderr
    assert message in result.stderr and "Fix:" in result.stderr and "Traceback" not in result.stderr
    after = {k: v for k, v in snapshot(home / "store", home / "registry.db").items() if k in before}
    assert after == before  # what was stored before is unchanged (new training outputs may be added)
    registry = cli(path, "registry", "abalone_model", "--json")
    if registry.returncode == 0:
        import json

        assert [p["version"] for p in json.loads(registry.stdout)] == [1]


def test_empty_data_file_fails_gather_and_writes_no_dataset(tmp_path, home):
    repo = make_project(tmp_path / "project")
    (tmp_path / "abalone.data").write_text("")
    result = cli(repo.path, "run", "abalone_model", "--stage", "gather", "-p", "source", str(tmp_path / "abalone.data"),
                 "--artifacts", str(tmp_path / "artifacts"))
    assert result.returncode == 1 and "is empty" in result.stderr
    assert list(home.rglob("manifest.json")) == []
    assert (tmp_path / "artifacts" / "abalone_model" / "gather_data.html").is_file()


def test_notebook_without_parameters_cell_is_refused_before_running(tmp_path, home):
    import nbformat

    repo = make_project(tmp_path / "project")
    path = repo.path / "abalone_model" / "gather_data.ipynb"
    notebook = nbformat.read(path, 4)
    for cell in notebook.cells:
        cell.metadata.pop("tags", None)
    nbformat.write(notebook, path)
    result = cli(repo.path, "run", "abalone_model", "--stage", "gather", "--artifacts", str(tmp_path / "artifacts"))
    assert result.returncode == 2 and "has no cell tagged 'parameters'" in result.stderr
    assert not (tmp_path / "artifacts" / "abalone_model").exists()


def test_an_unknown_stage_or_a_missing_notebook_exits_2(tmp_path, home):
    repo = make_project(tmp_path / "project")
    (repo.path / "abalone_model" / "deploy.ipynb").unlink()
    result = cli(repo.path, "run", "abalone_model", "--stage", "deploy")
    assert result.returncode == 2 and "deploy.ipynb is missing" in result.stderr and "templates" in result.stderr
    assert cli(repo.path, "run", "abalone_model", "--stage", "nope").returncode == 2
