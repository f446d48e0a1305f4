"""Committed notebooks: no outputs, the modelops kernel, a parameters cell, models in step with the templates."""

from __future__ import annotations

import json

import pytest

from ci.models import discover_models
from tests.conftest import ROOT

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


def _shared_cells(path) -> list[tuple[str, str]]:
    """The cells a model notebook shares with its template: all but `parameters` and `model-specific` ones."""
    cells = json.loads(path.read_text())["cells"]
    return [(c["cell_type"], "".join(c["source"])) for c in cells
            if not {"parameters", "model-specific"} & set(c.get("metadata", {}).get("tags", []))]


TEMPLATES = ROOT / "notebooks" / "templates"
MODEL_COPIES = [p for p in MODEL_NOTEBOOKS if p.parent.name != "templates"]


@pytest.mark.parametrize("path", MODEL_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_model_notebook_keeps_to_its_template(path):
    """Beyond its parameters cell and cells tagged `model-specific`, a model notebook is its template."""
    import difflib

    template = TEMPLATES / path.name
    assert template.is_file(), f"{path.relative_to(ROOT)} has no template {template.relative_to(ROOT)}"
    mine, theirs = _shared_cells(path), _shared_cells(template)
    if mine != theirs:
        diff = difflib.unified_diff([f"[{t}] {s}" for t, s in theirs], [f"[{t}] {s}" for t, s in mine],
                                    str(template.relative_to(ROOT)), str(path.relative_to(ROOT)), lineterm="")
        pytest.fail("model notebook drifted from its template; change the template (and every model), or tag "
                    "the model's own cells `model-specific`:\n" + "\n".join(diff))


def test_every_model_has_every_template_notebook():
    for model in discover_models(ROOT):
        missing = sorted(t.name for t in TEMPLATES.glob("*.ipynb") if not (model.path / t.name).is_file())
        assert missing == [], f"{model.name}/ lacks {missing}"


def test_drift_check_catches_an_edited_cell_and_allows_tagged_ones(tmp_path):
    notebook = json.loads((TEMPLATES / "train_register.ipynb").read_text())
    extra = {"cell_type": "code", "metadata": {"tags": ["model-specific"]}, "source": "print('mine')",
             "outputs": [], "execution_count": None, "id": "mine"}
    notebook["cells"].insert(3, extra)
    copy = tmp_path / "train_register.ipynb"
    copy.write_text(json.dumps(notebook))
    assert _shared_cells(copy) == _shared_cells(TEMPLATES / "train_register.ipynb")
    notebook["cells"][4]["source"] = "changed = True"
    copy.write_text(json.dumps(notebook))
    assert _shared_cells(copy) != _shared_cells(TEMPLATES / "train_register.ipynb")


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
