"""The facade the notebooks import: every name it lists resolves, and so does every name a notebook imports from it."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import modelops

ROOT = Path(__file__).resolve().parents[1]


def test_every_name_the_facade_lists_resolves():
    assert [name for name in modelops.__all__ if getattr(modelops, name, None) is None] == []


def test_every_name_a_notebook_imports_from_the_facade_resolves():
    imported = set()
    for path in [*ROOT.glob("*/*.ipynb"), *ROOT.glob("notebooks/**/*.ipynb")]:
        if ".venv" in path.parts:
            continue
        for cell in json.loads(path.read_text())["cells"]:
            for names in re.findall(r"^from modelops import (.+)$", "".join(cell["source"]), re.MULTILINE):
                imported |= {name.strip() for name in names.split(",")}
    assert "plots" in imported  # the walk found the notebooks
    for name in sorted(imported):
        assert getattr(importlib.import_module("modelops"), name) is not None, name
