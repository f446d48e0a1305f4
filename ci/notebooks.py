"""One source for model notebooks: each model folder's notebooks are generated from ``notebooks/templates/``.

A model notebook is its template, with two things of the model's own kept:

- the values in its cell tagged ``parameters``: a parameter the template still declares keeps the model's
  line (value and comment); a parameter the template adds arrives with the template's default; a parameter
  only the model declares is kept at the end of the cell (a model-specific cell may use it);
- cells tagged ``model-specific``: kept, each after the template cell it follows now (found by cell id), or at
  the end when that cell is gone from the template.

``python -m ci notebooks sync`` writes every model folder's notebooks this way (a template change reaches
every model in one command, and each model folder's diff is what CI selects it by); ``python -m ci notebooks
check`` exits 1 when a committed notebook differs from what sync would write (the tests run it). Generated
copies, rather than templates executed with the folder as a parameter, because a data scientist opens their
model's own notebook in Jupyter, in its folder, and runs it top to bottom with defaults.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ci.models import ModelFolder
from ci.stages import model_notebooks
from modelops import atomic
from modelops.errors import ConfigError

PARAMETERS = "parameters"
MODEL_SPECIFIC = "model-specific"
_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=")


@dataclass(frozen=True)
class Drift:
    """A model notebook that differs from what its template generates."""

    path: Path
    diff: str  # unified diff, committed -> generated
    missing: bool = False

    def describe(self, root: Path) -> str:
        where = self.path.relative_to(root)
        return f"{where}: missing" if self.missing else f"{where} differs from its template:\n{self.diff}"


def templates_dir(root: Path) -> Path:
    return root / "notebooks" / "templates"


def template_path(root: Path, name: str) -> Path:
    """The template of a model notebook.

    Raises:
        ConfigError: the template is missing.
    """
    path = templates_dir(root) / f"{name}.ipynb"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: every model notebook is generated from it. Fix: restore it from git.")
    return path


def generate(template: nbformat.NotebookNode, current: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    """The model notebook ``template`` generates, keeping ``current``'s parameter values and model-specific cells."""
    generated = copy.deepcopy(template)
    if current is None:
        return generated
    mine = _tagged(current, PARAMETERS)
    theirs = _tagged(generated, PARAMETERS)
    if mine is not None and theirs is not None:
        theirs.source = merge_parameters(theirs.source, mine.source)
    own = _own_cells(current)
    ids = [c.get("id") for c in generated.cells]
    for anchor, cell in own:
        position = ids.index(anchor) + 1 if anchor in ids else len(ids)
        while position < len(ids) and ids[position] in {c.get("id") for _, c in own}:
            position += 1  # after the model's cells already placed behind the same anchor
        generated.cells.insert(position, copy.deepcopy(cell))
        ids.insert(position, cell.get("id"))
    return generated


def merge_parameters(template: str, model: str) -> str:
    """The template's parameters cell with the model's own value lines (see the module docstring)."""
    own = {}
    for line in model.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            own[match.group(1)] = line
    lines, seen = [], set()
    for line in template.splitlines():
        match = _ASSIGNMENT.match(line)
        if match and match.group(1) in own:
            line = own[match.group(1)]
        if match:
            seen.add(match.group(1))
        lines.append(line)
    lines += [line for name, line in own.items() if name not in seen]
    return "\n".join(lines)


def expected(root: Path, folder: ModelFolder, name: str) -> nbformat.NotebookNode:
    """What ``sync`` writes for one notebook of one model folder."""
    template = nbformat.read(template_path(root, name), as_version=4)
    path = folder.notebook(name)
    current = nbformat.read(path, as_version=4) if path.is_file() else None
    return generate(template, current)


def sync(root: Path, folders: list[ModelFolder]) -> list[Path]:
    """Write every model notebook that differs from what its template generates; returns those written."""
    written = []
    for folder in folders:
        for name in model_notebooks():
            notebook = expected(root, folder, name)
            path = folder.notebook(name)
            text = nbformat.writes(notebook) + "\n"
            if not path.is_file() or path.read_text() != text:
                atomic.write_text(path, text)
                written.append(path)
    return written


def check(root: Path, folders: list[ModelFolder]) -> list[Drift]:
    """The model notebooks that differ from what ``sync`` would write (empty: all in step)."""
    drifts = []
    for folder in folders:
        for name in model_notebooks():
            path = folder.notebook(name)
            if not path.is_file():
                drifts.append(Drift(path, "", missing=True))
                continue
            committed = nbformat.read(path, as_version=4)
            generated = expected(root, folder, name)
            if _cells(committed) != _cells(generated) or committed.metadata != generated.metadata:
                diff = difflib.unified_diff(_lines(committed), _lines(generated), f"{path.name} (committed)",
                                            f"{path.name} (from the template)", lineterm="")
                drifts.append(Drift(path, "\n".join(diff)))
    return drifts


def write_new(root: Path, folder: Path) -> list[Path]:
    """The notebooks of a new model folder: its templates as they stand."""
    written = []
    for name in model_notebooks():
        path = folder / f"{name}.ipynb"
        atomic.write_text(path, nbformat.writes(nbformat.read(template_path(root, name), as_version=4)) + "\n")
        written.append(path)
    return written


def _tagged(notebook, tag: str):
    return next((c for c in notebook.cells if tag in c.get("metadata", {}).get("tags", [])), None)


def _own_cells(notebook) -> list[tuple[str | None, nbformat.NotebookNode]]:
    """The model-specific cells, each with the id of the nearest earlier cell that is not model-specific."""
    own, anchor = [], None
    for cell in notebook.cells:
        if MODEL_SPECIFIC in cell.get("metadata", {}).get("tags", []):
            own.append((anchor, cell))
        else:
            anchor = cell.get("id")
    return own


def _cells(notebook) -> list[tuple]:
    return [(c.cell_type, c.source, c.get("id"), dict(c.get("metadata", {}))) for c in notebook.cells]


def _lines(notebook) -> list[str]:
    lines = []
    for cell in notebook.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        lines.append(f"# [{cell.cell_type} {cell.get('id')}{' ' + ','.join(tags) if tags else ''}]")
        lines += cell.source.splitlines()
    return lines
