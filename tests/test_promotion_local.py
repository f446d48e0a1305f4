"""A failed promotion gate on the local backend, through the real notebooks and CLI: production is never touched.

One model in a project of its own: the whole flow promotes v1; v2 then goes to staging under an SLO no endpoint
can meet, the gate fails (exit 9), and every way into production refuses v2 (exit 4) while v1 keeps serving.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from ci.artifacts import Artifacts, model_reviews
from ci.models import ModelFolder
from modelops import get_backend
from tests.support.gitrepo import make_project

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


def cli(repo, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "ci", *args], cwd=repo.path, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def register_second_version(folder: ModelFolder):
    """v2 of the model, trained in-process from the dataset v1 was trained on, registered and approved."""
    from modelops.data.datasets import load_dataset
    from modelops.review.evaluation import check_quality, evaluate_model
    from modelops.review.packages import register_model
    from modelops.training.train import train_model

    ops, config = get_backend("local"), folder.config()
    dataset = load_dataset(ops.store, config)
    training = train_model(ops, config, dataset, log=lambda line: None)
    evaluation = evaluate_model(ops, config, dataset, training)
    package = register_model(ops, config, dataset, training, evaluation, check_quality(config, evaluation.metrics))
    return ops.registry.approve(config.name, package.version, by="alice")


def test_a_failed_gate_leaves_production_serving_what_it_served(home, tmp_path):
    from ci.pipeline import run_pipeline

    repo = make_project(tmp_path / "project")
    folder = ModelFolder(repo.path / "abalone_model")
    artifacts = Artifacts(tmp_path / "artifacts")
    [outcome] = run_pipeline([folder], backend="local", artifacts=artifacts, approval="auto", approver="alice",
                             log=lambda line: None)
    assert outcome.ok, outcome.error
    ops = get_backend("local")
    before = ops.endpoints.status("abalone-model")
    assert (before.version, before.package_id) == (1, "local:abalone-model/1")

    v2 = register_second_version(folder)
    config_path = folder.path / "model.yml"
    raw = yaml.safe_load(config_path.read_text())
    raw["environments"]["production"]["slo"] = {"p50_ms": 0.001, "p99_ms": 0.001, "error_rate": 0}
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    artifacts_dir = str(tmp_path / "artifacts")
    gated = cli(repo, "deploy", "abalone_model", "--version", str(v2.version), "--artifacts", artifacts_dir)
    assert gated.returncode == 9, gated.stderr
    assert "PromotionGateFailed: abalone-model: the promotion gate failed for abalone-model v2" in gated.stderr
    assert "above the SLO's 0.001 ms" in gated.stderr and "Production is untouched (it serves v1)" in gated.stderr
    assert ops.endpoints.status("abalone-model-staging").version == 2

    refused = cli(repo, "promote", "abalone_model", "--by", "mallory", "--artifacts", artifacts_dir)
    assert refused.returncode == 4
    assert refused.stderr.startswith("error: abalone-model v2 failed the promotion gate on staging at ")
    assert "production is untouched" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    direct = cli(repo, "deploy", "abalone_model", "--env", "production", "--version", "2", "--artifacts",
                 artifacts_dir)
    assert direct.returncode == 4 and direct.stderr.startswith("error: abalone-model v2 failed the promotion gate")

    after = ops.endpoints.status("abalone-model")
    assert (after.version, after.package_id, after.started_at) == (1, "local:abalone-model/1", before.started_at)
    events = ops.history.events("abalone-model")
    assert [e.action for e in events if e.environment == "production"] == ["promoted"]
    assert [(e.action, e.version) for e in events if e.environment == "staging"][-2:] == [("deployed", 2),
                                                                                          ("gate-failed", 2)]
    answer = cli(repo, "history", "abalone_model", "--env", "production")
    assert answer.returncode == 0 and "production: abalone-model v1 served at" in answer.stdout
    assert "promoted by alice" in answer.stdout

    [page] = model_reviews(Artifacts(artifacts_dir).runs())
    assert page.verdict == "FAILED" and not page.gate["gate_passed"] and page.promote_command is None
    assert page.deployed["production"]["version"] == 1 and page.deployed["staging"]["version"] == 2
