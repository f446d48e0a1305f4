"""Committed notebooks: no outputs, the modelops kernel, a parameters cell, models in step with the templates."""

from __future__ import annotations

import json

import pytest

from ci.models import discover_models
from tests.support.paths import ROOT

NOTEBOOKS = sorted(p for p in ROOT.rglob("*.ipynb") if not {".venv", "artifacts", ".modelops", ".ipynb_checkpoints"}
                   & set(p.relative_to(ROOT).parts))
MODEL_FOLDERS = {m.path for m in discover_models(ROOT)}  # every model folder, however it is named
MODEL_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent in MODEL_FOLDERS or p.parent.name == "templates"]


def test_there_are_notebooks():
    assert {p.name for p in MODEL_NOTEBOOKS} >= {"gather_data.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_without_outputs_and_with_the_modelops_kernel(path):
    notebook = json.loads(path.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code), "strip outputs before committing"
    assert notebook["metadata"]["kernelspec"]["name"] == "modelops"
    if path.name != "no_parameters.ipynb":  # the fixture that proves the runner refuses such notebooks
        assert "parameters" in code[0]["metadata"].get("tags", []), "the first code cell must be tagged parameters"


TEMPLATES = ROOT / "notebooks" / "templates"


def test_model_notebooks_are_what_the_templates_generate():
    """`python -m ci notebooks check` passes on the repository: no model notebook drifted from its template."""
    from ci.notebooks import check

    drifts = check(ROOT, discover_models(ROOT))
    assert not drifts, "\n".join(d.describe(ROOT) for d in drifts) + "\nFix: python -m ci notebooks sync"


def _cell(source, *tags, id):
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.id, cell.metadata["tags"] = id, list(tags)
    return cell


def test_sync_keeps_a_models_parameter_values_and_own_cells_and_takes_the_rest_from_the_template(tmp_path):
    import nbformat

    from ci.models import ModelFolder
    from ci.notebooks import check, sync
    from ci.stages import model_notebooks

    root = tmp_path
    (root / "notebooks" / "templates").mkdir(parents=True)
    for name in model_notebooks():
        template = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "modelops", "display_name": "m"}})
        template.cells = [_cell('backend = "local"  # which backend\nseed = None', "parameters", id="p"),
                          _cell("x = 1", id="a"), _cell("y = 2", id="b")]
        nbformat.write(template, root / "notebooks" / "templates" / f"{name}.ipynb")
    folder = root / "demo_model"
    folder.mkdir()
    (folder / "model.yml").write_text("name: demo\n")
    model = ModelFolder(folder)
    assert [d.missing for d in check(root, [model])] == [True] * len(model_notebooks())
    assert len(sync(root, [model])) == len(model_notebooks()) and check(root, [model]) == [] == sync(root, [model])

    # The model sets its own seed and adds a parameter and a cell of its own; someone also edits a shared cell.
    mine = nbformat.read(folder / "train_register.ipynb", as_version=4)
    mine.cells[0].source = 'backend = "local"  # which backend\nseed = 7  # ours\nextra = 3'
    mine.cells.insert(2, _cell("print(extra)", "model-specific", id="own"))
    mine.cells[3].source = "y = 'edited in the copy'"
    nbformat.write(mine, folder / "train_register.ipynb")
    [drift] = check(root, [model])
    assert "edited in the copy" in drift.diff and drift.path.name == "train_register.ipynb"

    # The template changes: a new parameter, a changed cell.
    template_path = root / "notebooks" / "templates" / "train_register.ipynb"
    template = nbformat.read(template_path, as_version=4)
    template.cells[0].source += "\nthreads = 2  # new"
    template.cells[1].source = "x = 'from the template'"
    nbformat.write(template, template_path)
    assert sync(root, [model]) == [folder / "train_register.ipynb"]
    synced = nbformat.read(folder / "train_register.ipynb", as_version=4)
    assert [c.source for c in synced.cells] == [
        'backend = "local"  # which backend\nseed = 7  # ours\nthreads = 2  # new\nextra = 3',
        "x = 'from the template'", "print(extra)", "y = 2"]
    assert check(root, [model]) == []


@pytest.mark.slow
def test_ci_notebooks_check_exits_1_with_the_diff_and_sync_fixes_it(tmp_path):
    import subprocess
    import sys

    from tests.support.gitrepo import make_project

    repo = make_project(tmp_path / "project", models=("abalone_model",))
    notebook = repo.path / "abalone_model" / "deploy.ipynb"
    notebook.write_text(notebook.read_text().replace("# Deploy", "# Deploy (edited)"))
    command = [sys.executable, "-m", "ci", "notebooks"]
    failed = subprocess.run([*command, "check"], cwd=repo.path, capture_output=True, text=True)
    assert failed.returncode == 1 and "abalone_model/deploy.ipynb differs" in failed.stderr
    assert "+# Deploy" in failed.stderr and "notebooks sync" in failed.stderr
    fixed = subprocess.run([*command, "sync"], cwd=repo.path, capture_output=True, text=True)
    assert fixed.returncode == 0 and "wrote abalone_model/deploy.ipynb" in fixed.stdout
    assert subprocess.run([*command, "check"], cwd=repo.path, capture_output=True).returncode == 0


@pytest.mark.slow
def test_pre_commit_strips_notebooks_as_they_are_committed():
    """The pre-commit nbstripout hook, with its configured args, would change no committed notebook."""
    import subprocess
    import sys

    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    [hook] = [h for repo in config["repos"] for h in repo["hooks"] if h["id"] == "nbstripout"]
    assert {h["id"] for repo in config["repos"] for h in repo["hooks"]} >= {"nbstripout", "ruff"}
    result = subprocess.run([sys.executable, "-m", "nbstripout", "--verify", *hook.get("args", []),
                             *map(str, NOTEBOOKS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
