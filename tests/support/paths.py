"""Where the tests find the repository, the real datasets and the tiny fixture notebooks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_NOTEBOOKS = ROOT / "tests" / "notebooks"


def _shared_data() -> Path:
    configured = os.environ.get("MODELOPS_DATA_DIR")
    path = Path(configured).resolve() if configured else (ROOT.parent / "shared" / "data")
    if not (path / "abalone").is_dir():
        pytest.exit(f"the real datasets are not at {path}. Set MODELOPS_DATA_DIR to the folder holding "
                    f"abalone/abalone.data and churn/churn.txt (the README's test command does).", returncode=2)
    return path


SHARED_DATA = _shared_data()


def fixture_notebook(name: str) -> Path:
    """One of the tiny notebooks under tests/notebooks (works, fails, no_parameters, dies)."""
    path = FIXTURE_NOTEBOOKS / f"{name}.ipynb"
    assert path.is_file(), path
    return path
