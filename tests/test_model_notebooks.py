"""The real model notebooks, executed through papermill on the real data (MODELOPS_DATA_DIR)."""

from __future__ import annotations

import nbformat
import pytest

from ci.artifacts import Artifacts
from ci.models import resolve_model_dir
from ci.runner import run_stage
from tests.conftest import ROOT

EXPECTED_GATHER = {
    "abalone_model": {"rows_train": 2924, "rows_validation": 835, "rows_test": 418, "n_features": 10,
                      "data_sha256": "de37cdcdcaaa50c309d514f248f7c2302a5f1f88c168905eba23fe2fbc78449f"},
    "churn_model": {"rows_train": 3500, "rows_validation": 1000, "rows_test": 500, "n_features": 99,
                    "data_sha256": "f2bbe2a120317bc0228beec59da1fcbc31d589280b1b674814eaf5174c2ca6cc"},
}


def images(path) -> int:
    notebook = nbformat.read(path, 4)
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.notebook
@pytest.mark.parametrize("model", sorted(EXPECTED_GATHER))
def test_gather_notebook(home, tmp_path, model):
    artifacts = Artifacts(tmp_path / "artifacts")
    [run] = run_stage(resolve_model_dir(ROOT / model), "gather", backend="local", artifacts=artifacts)
    assert run.status == "passed"
    assert EXPECTED_GATHER[model].items() <= run.scraps.items()
    assert run.parameters == {"backend": "local"}
    executed = tmp_path / "artifacts" / model / "gather_data.ipynb"
    assert images(executed) == 2  # target distribution and correlation, each shown once
    assert (home / "store").is_dir()
    metrics = artifacts.metrics(model)
    assert metrics["rows_test"] == EXPECTED_GATHER[model]["rows_test"]
    if model == "churn_model":
        assert 0.45 < metrics["positive_rate_train"] < 0.55


@pytest.mark.notebook
def test_gather_with_seed_parameter(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    [run] = run_stage(resolve_model_dir(ROOT / "abalone_model"), "gather", artifacts=artifacts,
                      parameters={"split_seed": 7})
    assert run.parameters == {"backend": "local", "split_seed": 7}
    default_id = "1afe59bb05ca285c"  # the dataset id of the default seed (1729)
    assert run.scraps["dataset_id"] != default_id and run.scraps["rows_train"] == 2924


@pytest.mark.notebook
def test_gather_offline_without_data_points_at_the_fix(offline_home, tmp_path, monkeypatch):
    import socket

    from modelops.errors import NotebookFailed

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed, match=r"DataSourceError: could not download.*MODELOPS_DATA_DIR"):
        run_stage(resolve_model_dir(ROOT / "abalone_model"), "gather", artifacts=artifacts,
                  parameters={"source": f"http://127.0.0.1:{port}/abalone.data"})
    assert (tmp_path / "artifacts" / "abalone_model" / "gather_data.html").is_file()
