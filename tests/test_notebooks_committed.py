"""Committed notebooks: no outputs, the modelops kernel, a parameters cell, models in step with the templates."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT

NOTEBOOKS = sorted(p for p in ROOT.rglob("*.ipynb") if not {".venv", "artifacts", ".modelops", ".ipynb_checkpoints"}
                   & set(p.relative_to(ROOT).parts))
MODEL_NOTEBOOKS = [p for p in NOTEBOOKS if p.parent.name.endswith("_model") or p.parent.name == "templates"]


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
