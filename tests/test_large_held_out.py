"""A model whose held-out split is over the 6 MB a request may carry: deployed, checked and gated end to end.

Scaffolded by `new-model` on a generated table of wide rows (40 columns at full precision), its test split alone
is over 6 MB as CSV, so the deploy's answer check and the promotion gate must split it into batches to send it.
The whole local pipeline runs (gather, train, review, deploy to staging, the gate, the promotion), through the
real notebooks and endpoint servers.
"""

from __future__ import annotations

import json

import pytest
import yaml

from ci.artifacts import Artifacts
from ci.models import ModelFolder
from ci.scaffold import new_model
from tests.support import tables
from tests.support.gitrepo import make_project

pytestmark = [pytest.mark.slow, pytest.mark.notebook]

#: Rows of the table: half of them held out, enough for a test split over 6 MB as CSV.
ROWS = 18_000


def test_a_held_out_split_over_6_mb_passes_the_deploy_check_and_the_gate(home, tmp_path, monkeypatch):
    from ci.pipeline import run_pipeline
    from modelops import get_backend
    from modelops.data.prepare import features_and_target
    from modelops.release.deploy import held_out_split
    from modelops.serving.protocol import to_csv

    data = tmp_path / "data"
    data.mkdir()
    source = tables.wide_binary(data / "wide.csv", ROWS)
    monkeypatch.setenv("MODELOPS_DATA_DIR", str(data))
    repo = make_project(tmp_path / "project", models=())
    new_model(repo.path, "wide", problem="binary", source=str(source), target="label")
    config_path = repo.path / "wide" / "model.yml"
    raw = yaml.safe_load(config_path.read_text())
    raw["split"].update(train=0.4, validation=0.1, test=0.5)
    # A 2-core machine shared with other tests: the gate's latency figures are not this test's subject, the
    # sample's size is (fewer requests than the default 1,000).
    raw["environments"]["production"]["slo"] = {"p50_ms": 2000, "p99_ms": 10000, "error_rate": 0,
                                                "latency_requests": 200}
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    repo.commit("a wide model, half its rows held out")

    artifacts = Artifacts(tmp_path / "artifacts")
    [outcome] = run_pipeline([ModelFolder(repo.path / "wide")], backend="local", artifacts=artifacts,
                             approval="auto", approver="alice", log=lambda line: None)
    assert outcome.ok, outcome.error

    ops = get_backend("local")
    config = ModelFolder(repo.path / "wide").config()
    package = ops.registry.get(config.name, 1)
    X, _ = features_and_target(held_out_split(ops, config, package))
    assert len(to_csv(X)) > 6 * 1024 * 1024  # one request could not carry it

    found = json.loads((tmp_path / "artifacts" / "wide" / "metrics.json").read_text())
    for env_name in ("staging", "production"):
        deployed = found[f"deploy-{env_name}"]
        assert deployed["predictions_identical"] is True and deployed["check_batches"] >= 2, deployed
    assert found["gate_passed"] is True, found.get("gate_failures")
    assert found["rows_replayed"] == found["rows_identical"] == len(X) and found["errors"] == 0
    assert found["batches"] >= 2 and found["latency_requests"] == 200
    assert ops.endpoints.status(config.name).version == 1  # promoted
