"""A third model in one command: `ci new-model`, then its whole local pipeline, then the reviewer's front page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ci.models import discover_models
from ci.scaffold import new_model, profile_data
from modelops.config import load_model_config
from modelops.errors import ConfigError, DataError
from tests.support.browser import browser_page
from tests.support.gitrepo import make_project
from tests.support.paths import ROOT, SHARED_DATA
from tests.support.servers import stop_endpoints

pytestmark = pytest.mark.slow  # the CLI's whole pipeline in subprocesses

CHURN = SHARED_DATA / "churn" / "churn.txt"


def cli(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ci", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.fixture(scope="module")
def third_model(tmp_path_factory):
    """A project holding only notebooks/ and a scaffolded model, after its whole local pipeline ran."""
    root = tmp_path_factory.mktemp("third")
    repo = make_project(root / "project", models=())
    home = root / "home"
    env = {"MODELOPS_HOME": str(home), "MODELOPS_DATA_DIR": str(SHARED_DATA), "MODELOPS_BACKEND": "local"}
    created = cli(repo.path, "new-model", "day_minutes", "--problem", "regression", "--source", str(CHURN),
                  "--target", "Day Mins", env=env)
    assert created.returncode == 0, created.stderr
    repo.commit("add day_minutes")
    run = cli(repo.path, "pipeline", "--backend", "local", "--approve", "--by", "tester", env=env)
    yield repo, run
    stop_endpoints(home)


@pytest.mark.notebook
def test_scaffolded_model_runs_its_whole_local_pipeline(third_model):
    repo, run = third_model
    assert run.returncode == 0, run.stderr[-3000:]
    assert "day_minutes: v1 promoted by tester: production serves it at http://127.0.0.1:" in run.stderr
    metrics = json.loads((repo.path / "artifacts" / "day_minutes" / "metrics.json").read_text())
    assert metrics["verdict"] == "APPROVE" and metrics["quality_passed"] is True
    assert metrics["r2"] > 0.1 and metrics["rmse"] < metrics["null_rmse"]  # a real lift over the mean
    assert metrics["status"] == "Approved"
    assert metrics["deploy-staging"]["predictions_identical"] is True
    assert metrics["deploy-production"]["predictions_identical"] is True and metrics["gate_passed"] is True
    from ci.stages import model_notebooks

    assert {p.name for p in (repo.path / "day_minutes").iterdir()} == {
        "model.yml", "features.py", *(f"{name}.ipynb" for name in model_notebooks())}
    for name in model_notebooks():  # the templates themselves, not a third copy
        assert (repo.path / "day_minutes" / f"{name}.ipynb").read_bytes() == \
            (ROOT / "notebooks" / "templates" / f"{name}.ipynb").read_bytes()


@pytest.mark.notebook
def test_front_page_shows_verdict_metrics_plots_and_links_in_a_browser(third_model):
    repo, run = third_model
    assert run.returncode == 0, run.stderr[-3000:]
    index = repo.path / "artifacts" / "index.html"
    screenshots = Path(os.environ.get("MODELOPS_TEST_ARTIFACTS", ROOT / "artifacts" / "tests"))
    with browser_page() as page:
        page.goto(index.as_uri())
        page.click("summary")  # open the data and endpoint plots too, so every image must load
        section = page.locator("section#day_minutes")
        assert section.locator("[data-verdict]").inner_text() == "APPROVE"
        assert "v1" in section.inner_text() and "Approved by tester" in section.inner_text()
        metrics = section.locator("table.metrics").inner_text()
        assert "rmse" in metrics and "null model" in metrics
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        assert len(images) >= 5 and all(width > 0 for _, width in images), images
        links = page.evaluate("Array.from(document.links).map(a => a.getAttribute('href'))")
        notebooks = [h for h in links if h.endswith(".html")]
        assert {Path(h).stem for h in notebooks} >= {"train_register", "review", "deploy-staging", "gate",
                                                     "deploy-production"}
        missing = [h for h in links if not (index.parent / h).is_file()]
        assert missing == [], f"links that do not resolve: {missing}"
        page.goto((index.parent / notebooks[0]).as_uri())  # a linked notebook opens as a page
        assert page.title()
        page.goto(index.as_uri())
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "front_page.png"), full_page=True)
        assert page.problems == []
    assert (screenshots / "front_page.png").stat().st_size > 10_000


def test_new_model_is_discovered_and_its_config_validates(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELOPS_DATA_DIR", str(SHARED_DATA))
    repo = make_project(tmp_path / "p", models=("abalone_model",))
    folder = new_model(repo.path, "churn_again", problem="binary", source=str(CHURN), target="Churn?")
    assert [m.name for m in discover_models(repo.path)] == ["abalone_model", "churn_again"]
    config = load_model_config(folder)
    assert config.name == "churn-again" and config.problem_type == "binary"
    raw = yaml.safe_load((folder / "model.yml").read_text())
    assert raw["data"]["positive_label"] == "True." and raw["data"]["drop"] == ["Phone"]
    assert "State" in raw["data"]["categorical"] and raw["quality"] == {"auc": {"min": 0.6}}
    assert raw["data"]["sha256"] == "f2bbe2a120317bc0228beec59da1fcbc31d589280b1b674814eaf5174c2ca6cc"


def test_new_model_is_picked_up_by_ci_changed_and_the_circleci_config(tmp_path):
    env = {"MODELOPS_DATA_DIR": str(SHARED_DATA)}
    repo = make_project(tmp_path / "p", models=("abalone_model",))
    (repo.path / "README.md").write_text((ROOT / "README.md").read_text())  # the CI test job runs its command
    assert cli(repo.path, "circleci", "generate", env=env).returncode == 0
    repo.commit("ci config")
    repo.git("checkout", "-q", "-b", "add-churn")
    assert cli(repo.path, "new-model", "churn_again", "--problem", "binary", "--source", str(CHURN), "--target",
               "Churn?", env=env).returncode == 0
    stale = cli(repo.path, "circleci", "check", env=env)
    assert stale.returncode == 1 and "generate" in (stale.stdout + stale.stderr)
    assert cli(repo.path, "circleci", "generate", env=env).returncode == 0
    repo.commit("add churn_again")
    setup = yaml.safe_load((repo.path / ".circleci" / "config.yml").read_text())
    assert "churn_again/" in json.dumps(setup)
    continuation = yaml.safe_load((repo.path / ".circleci" / "dynamic_config.yml").read_text())
    assert "run-churn_again" in continuation["parameters"] and "churn_again" in continuation["workflows"]
    changed = cli(repo.path, "changed", "--base", "main", "--json", env=env)
    assert changed.returncode == 0, changed.stderr
    decision = json.loads(changed.stdout)
    assert decision["models"] == ["churn_again"] and decision["parameters"]["run-churn_again"] is True


def test_headerless_data_needs_column_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELOPS_DATA_DIR", str(SHARED_DATA))
    repo = make_project(tmp_path / "p", models=())
    abalone = SHARED_DATA / "abalone" / "abalone.data"
    with pytest.raises(DataError, match="no header row.*--columns"):
        new_model(repo.path, "rings", problem="regression", source=str(abalone), target="rings")
    assert not (repo.path / "rings").exists() and not list(repo.path.glob(".rings-*"))
    columns = ["sex", "length", "diameter", "height", "whole", "shucked", "viscera", "shell", "rings"]
    folder = new_model(repo.path, "rings", problem="regression", source=str(abalone), target="rings",
                       columns=columns)
    config = load_model_config(folder)
    assert list(config.data.columns) == columns
    assert list(config.data.categorical) == ["sex"]


@pytest.mark.parametrize("name, message", [
    ("abalone_model", "already exists"),
    ("Abalone-Model", "already uses in the registry"),
    ("notebooks", "already exists"),
    ("../escape", "cannot name a model"),
    ("/tmp/abs", "cannot name a model"),
    ("-dash", "cannot name a model"),
    ("trailing_", "cannot name a model"),
    ("x" * 41, "cannot name a model"),
    ("has space", "cannot name a model"),
    ("all-models", "run-all-models is the one shared code sets"),
    ("test", "would replace the 'test' workflow"),
])
def test_refuses_names_that_cannot_be_a_model_folder(tmp_path, name, message):
    repo = make_project(tmp_path / "p", models=("abalone_model",))
    before = sorted(p.name for p in repo.path.iterdir())
    result = cli(repo.path, "new-model", "--problem", "regression", "--source", str(CHURN), "--target", "Day Mins",
                 "--", name, env={"MODELOPS_DATA_DIR": str(SHARED_DATA)})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Fix:" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in repo.path.iterdir()) == before


@pytest.mark.parametrize("problem, target, options, message", [
    ("regression", "State", {}, "not numeric"),
    ("binary", "Day Mins", {}, "needs exactly 2"),
    ("binary", "Int'l Plan", {"positive_label": "maybe"}, "not a value of"),
    ("regression", "Nope", {}, "not in"),
])
def test_profile_refuses_targets_that_do_not_fit(problem, target, options, message):
    with pytest.raises(DataError, match=message):
        profile_data(CHURN, target=target, problem=problem, **options)


def test_profile_reads_header_identifiers_and_positive_label(tmp_path):
    data = tmp_path / "d.csv"
    rows = [f"{i},id{i},{'yes' if i % 3 else 'no'},{i % 4},{i * 0.5}" for i in range(60)]
    data.write_text("n,customer,churned,plan,spend\n" + "\n".join(rows) + "\n")
    profile = profile_data(data, target="churned", problem="binary")
    assert profile.header is True and profile.drop == ["customer"] and profile.categorical == []
    assert profile.positive_label == "yes" and profile.rows == 60
    assert profile_data(data, target="churned", problem="binary", positive_label="no").positive_label == "no"
    data.write_text("colour,size\n" + "\n".join(f"{'red' if i % 2 else 'blue'},{i}" for i in range(30)) + "\n")
    with pytest.raises(DataError, match="cannot tell which value of 'colour'.*--positive-label"):
        profile_data(data, target="colour", problem="binary")
    assert profile_data(data, target="colour", problem="binary", positive_label="red").positive_label == "red"
    with pytest.raises(ConfigError, match="not supported"):
        new_model(tmp_path, "m", problem="ranking", source=str(data), target="plan")
