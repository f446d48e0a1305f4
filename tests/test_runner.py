"""The papermill runner on tiny fixture notebooks: artifacts on success and failure, parameter checks, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from ci.artifacts import Artifacts
from ci.runner import Step, check_no_secrets, declared_parameters, execute, parse_parameters
from ci.stages import MODEL, Notebook
from modelops.errors import ConfigError, NotebookFailed
from modelops.records import Record
from tests.support.paths import ROOT, fixture_notebook

pytestmark = pytest.mark.slow  # real kernels through papermill


def step(name, tmp_path):
    return Step(Notebook(name, MODEL, Record, "a test fixture"), fixture_notebook(name), tmp_path)


def test_success_writes_notebook_html_metrics_and_index(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    run = execute("demo", step("works", tmp_path), {"x": 21, "label": "hi"}, artifacts)
    assert run.status == "passed" and run.scraps == {"doubled": 42, "label": "hi"}
    model_dir = tmp_path / "artifacts" / "demo"
    executed = nbformat.read(model_dir / "works.ipynb", 4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert "doubled" in (model_dir / "works.html").read_text()
    assert json.loads((model_dir / "metrics.json").read_text()) == {"doubled": 42, "label": "hi"}
    index = (tmp_path / "artifacts" / "index.html").read_text()
    assert 'href="demo/works.html"' in index and "passed" in index
    assert "| demo | works | passed |" in (tmp_path / "artifacts" / "summary.md").read_text()


def test_failure_keeps_executed_notebook_and_names_cell(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed) as failed:
        execute("demo", step("fails", tmp_path), {"divisor": 0}, artifacts)
    message = str(failed.value)
    assert "demo/fails.ipynb failed at cell [4]" in message  # [3] plus the injected-parameters cell
    assert "ZeroDivisionError: division by zero" in message and "fails.html" in message
    html = (tmp_path / "artifacts" / "demo" / "fails.html").read_text()
    assert "ZeroDivisionError" in html
    executed = nbformat.read(tmp_path / "artifacts" / "demo" / "fails.ipynb", 4)
    assert any(o.get("ename") == "ZeroDivisionError" for c in executed.cells for o in c.get("outputs", []))
    [run] = artifacts.runs()
    assert run.status == "failed" and run.error["cell"] == 4
    assert "failed" in (tmp_path / "artifacts" / "index.html").read_text()
    # A failed run's scraps do not reach metrics.json.
    assert artifacts.metrics("demo") == {}


def test_rerun_replaces_the_previous_run_in_the_log(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed):
        execute("demo", step("fails", tmp_path), {"divisor": 0}, artifacts)
    execute("demo", step("fails", tmp_path), {"divisor": 5}, artifacts)
    [run] = artifacts.runs()
    assert run.status == "passed" and run.scraps == {"before_failure": 1, "after_failure": 2.0}


def test_dead_kernel_is_reported_with_the_partial_notebook(home, tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed, match=r"failed at the kernel: DeadKernelError: the kernel died"):
        execute("demo", step("dies", tmp_path), {}, artifacts)
    executed = nbformat.read(tmp_path / "artifacts" / "demo" / "dies.ipynb", 4)
    assert any("before_death" in json.dumps(c.get("outputs", [])) for c in executed.cells)


def test_declared_parameters_are_read_and_a_missing_parameters_cell_is_refused():
    assert set(declared_parameters(fixture_notebook("works"))) == {"x", "label"}
    with pytest.raises(ConfigError, match="has no cell tagged 'parameters'"):
        declared_parameters(fixture_notebook("no_parameters"))


def test_declared_parameters_are_what_papermill_finds_in_every_notebook_the_runner_runs():
    import papermill

    notebooks = [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("notebooks/templates/*.ipynb"),
                 *ROOT.glob("*_model/*.ipynb"), fixture_notebook("works"), fixture_notebook("where")]
    assert len(notebooks) > 10
    for path in notebooks:
        found = {name: value["default"] for name, value in papermill.inspect_notebook(str(path)).items()}
        assert {name: value["default"] for name, value in declared_parameters(path).items()} == found, path


def test_parameters_are_typed_like_yaml_scalars():
    assert parse_parameters([("a", "7"), ("b", "0.5"), ("c", "null"), ("d", "true"), ("e", "abalone.data"),
                             ("f", "s3://b/k.csv"), ("g", "a: b")]) == {
        "a": 7, "b": 0.5, "c": None, "d": True, "e": "abalone.data", "f": "s3://b/k.csv", "g": "a: b"}


@pytest.mark.parametrize("pair", [("aws_secret_access_key", "x"), ("api_token", "x"),
                                  ("source", "AKIAABCDEFGHIJKLMNOP")])
def test_secret_parameters_are_refused(pair):
    with pytest.raises(ConfigError, match="looks like a credential"):
        check_no_secrets(dict([pair]))


def cli(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ci", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_refuses_unknown_parameter_and_path_tricks(home, tmp_path):
    import os

    env = dict(os.environ)
    result = cli("run", "abalone_model", "--stage", "gather", "-p", "sead", "3", "--artifacts", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "parameter(s) ['sead'] are declared by no notebook of stage 'gather'" in result.stderr
    assert "split_seed" in result.stderr and "Traceback" not in result.stderr
    for bad in ("../abalone_model", "/etc", "abalone_model/../churn_model/..", "tests"):
        result = cli("run", bad, "--stage", "gather", env=env)
        assert result.returncode == 2, bad
        assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "index.html").exists()


def test_artifact_paths_cannot_escape_the_artifacts_folder(tmp_path):
    from modelops.errors import StoreError

    artifacts = Artifacts(tmp_path / "artifacts")
    for model, notebook in (("../outside", "x"), ("m", "../../x"), ("/etc", "passwd"), ("m", "a/b")):
        with pytest.raises(StoreError, match="unsafe store key"):
            artifacts.notebook_path(model, notebook, ".ipynb")


def kernel_processes() -> list:
    """The kernels this test process started and that still run."""
    import psutil

    kernels = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(process.cmdline()):
                kernels.append(process)
        except psutil.Error:  # gone while we looked
            pass
    return kernels


def test_the_next_notebooks_kernel_starts_while_this_one_runs_in_its_folder_with_the_environment(
        home, tmp_path, monkeypatch):
    from ci.kernels import KernelsAhead

    monkeypatch.setenv("MODELOPS_TEST_VALUE", "set by the runner")
    artifacts, here, there = Artifacts(tmp_path / "artifacts"), step("where", tmp_path), step("where", ROOT)
    with KernelsAhead(enabled=True) as kernels:
        first = execute("demo", here, {}, artifacts, kernels=kernels, following=there)
        [ahead] = kernel_processes()  # the second notebook's kernel, started while the first ran
        second = execute("demo", there, {}, artifacts, kernels=kernels)
    assert second.scraps["pid"] == ahead.pid != first.scraps["pid"]
    assert (first.scraps["cwd"], second.scraps["cwd"]) == (str(tmp_path), str(ROOT))
    assert first.scraps["value"] == second.scraps["value"] == "set by the runner"
    assert kernel_processes() == []


def test_a_kernel_started_ahead_is_not_used_by_a_notebook_that_would_get_another(home, tmp_path, monkeypatch):
    from ci.kernels import KernelsAhead

    artifacts = Artifacts(tmp_path / "artifacts")
    with KernelsAhead(enabled=True) as kernels:
        kernels.start(tmp_path)
        [ahead] = kernel_processes()
        monkeypatch.setenv("MODELOPS_TEST_VALUE", "changed after it started")  # what a fresh kernel would see
        changed = execute("demo", step("where", tmp_path), {}, artifacts, kernels=kernels)
        assert changed.scraps["value"] == "changed after it started" and changed.scraps["pid"] != ahead.pid
        kernels.start(tmp_path)
        elsewhere = execute("demo", step("where", ROOT), {}, artifacts, kernels=kernels)  # another working folder
        assert elsewhere.scraps["cwd"] == str(ROOT)
    assert not ahead.is_running() and kernel_processes() == []


def test_a_failed_notebook_leaves_no_kernel_behind_neither_its_own_nor_the_next_ones(home, tmp_path):
    from ci.kernels import KernelsAhead

    artifacts = Artifacts(tmp_path / "artifacts")
    with pytest.raises(NotebookFailed), KernelsAhead(enabled=True) as kernels:
        kernels.start(tmp_path)
        execute("demo", step("fails", tmp_path), {"divisor": 0}, artifacts, kernels=kernels,
                following=step("works", tmp_path))
    assert kernel_processes() == []
