"""Faults and secrets around a deployed project: killed processes, damaged artifacts, leaked credentials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.gitrepo import make_project
from tests.support.paths import SHARED_DATA
from tests.support.projects import cli
from tests.support.servers import stop_endpoints

pytestmark = pytest.mark.notebook

# Fake credentials: if any of them shows up in an artifact or log, a secret leaked.
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEY000000042",
    "AWS_SECRET_ACCESS_KEY": "fake/secret+Key0123456789abcdefghijklmnop",
    "AWS_SESSION_TOKEN": "FakeSessionToken-6f1c2a9e",
    "CIRCLE_TOKEN": "circle-fake-token-9d8c7b6a",
    "CIRCLECI_CLI_TOKEN": "circleci-cli-fake-5e4d3c2b",
}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The abalone model run through the whole local pipeline, with fake secrets in the environment."""
    base = tmp_path_factory.mktemp("deployed")
    repo = make_project(base / "project")
    env = {"MODELOPS_HOME": str(base / "home"), "MODELOPS_DATA_DIR": str(SHARED_DATA), **SECRETS}
    result = cli(repo.path, "pipeline", "--approve", "--by", "tester", "--artifacts", str(base / "artifacts"), env=env)
    assert result.returncode == 0, result.stderr
    yield base, repo, env
    stop_endpoints(base / "home")


def test_no_secret_reaches_any_artifact_or_log(deployed):
    base, _, _ = deployed
    scanned = 0
    for folder in (base / "artifacts", base / "home"):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix not in (".gz", ".csv", ".data") and path.stat().st_size < 50_000_000:
                text = path.read_bytes()
                scanned += 1
                for name, value in SECRETS.items():
                    assert value.encode() not in text, f"{name} leaked into {path}"
    assert scanned > 20  # notebooks, HTML, metrics, run log, registry, endpoint record, server log


def test_credentials_are_refused_as_parameters(deployed):
    _, repo, env = deployed
    result = cli(repo.path, "run", "abalone_model", "--stage", "gather", "-p", "source",
                 SECRETS["AWS_ACCESS_KEY_ID"], env=env)
    assert result.returncode == 2 and "looks like a credential" in result.stderr


def test_a_dead_endpoint_is_shown_down_and_deploy_brings_it_back(deployed):
    base, repo, env = deployed
    record = json.loads((base / "home" / "endpoints" / "abalone-model" / "endpoint.json").read_text())
    os.kill(record["pid"], signal.SIGKILL)
    time.sleep(0.5)
    listing = cli(repo.path, "endpoints", env=env)
    assert "abalone-model" in listing.stdout and "Down" in listing.stdout and "python -m ci deploy" in listing.stdout
    invoked = subprocess.run([sys.executable, "-m", "ci", "invoke", "abalone_model", "--csv", "-"], cwd=repo.path,
                             input="0.5,0.4,0.1,0.5,0.2,0.1,0.15,0,0,1\n", capture_output=True, text=True,
                             env={**os.environ, **env})
    assert invoked.returncode == 5
    assert "restart it with `python -m ci deploy <model folder> --env production`" in invoked.stderr
    redeployed = cli(repo.path, "deploy", "abalone_model", "--env", "production", "--artifacts",
                     str(base / "artifacts"), env=env)
    assert redeployed.returncode == 0, redeployed.stderr
    assert "production: v1 deployed" in redeployed.stdout


def test_a_damaged_artifact_is_refused_and_the_live_version_keeps_serving(deployed):
    base, repo, env = deployed
    trained = cli(repo.path, "run", "abalone_model", "--stage", "train", "--force",
                  "--artifacts", str(base / "artifacts"), env=env)
    assert trained.returncode == 0, trained.stderr
    assert cli(repo.path, "approve", "abalone_model", "--version", "2", "--by", "tester", env=env).returncode == 0
    [package] = [p for p in json.loads(cli(repo.path, "registry", "abalone_model", "--json", env=env).stdout)
                 if p["version"] == 2]
    artifact = package["artifact_uri"].removeprefix("file://")
    with open(artifact, "r+b") as handle:
        handle.truncate(os.path.getsize(artifact) // 2)
    result = cli(repo.path, "deploy", "abalone_model", "--version", "2", "--artifacts", str(base / "artifacts"),
                 env=env)
    assert result.returncode == 5, result.stderr
    assert "registry recorded" in result.stderr and "v1 keeps serving" in result.stderr
    status = json.loads(cli(repo.path, "endpoints", "--json", env=env).stdout)
    assert sorted((e["name"], e["status"], e["version"]) for e in status) == [
        ("abalone-model", "InService", 1), ("abalone-model-staging", "InService", 1)]


def test_a_runner_killed_mid_notebook_leaves_nothing_trusted_and_a_rerun_recovers(deployed):
    base, repo, env = deployed
    artifacts = base / "artifacts"
    runner = subprocess.Popen([sys.executable, "-m", "ci", "run", "abalone_model", "--stage", "train", "--force",
                               "--artifacts", str(artifacts)], cwd=repo.path, env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = artifacts / "runs.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = {(r["notebook"], r["status"]) for r in json.loads(log.read_text())["runs"]}
        if ("train_register", "running") in runs:
            break
        time.sleep(0.05)
    os.killpg(runner.pid, signal.SIGKILL)
    runner.wait(timeout=30)
    runs = {r["notebook"]: r for r in json.loads(log.read_text())["runs"]}
    assert runs["train_register"]["status"] == "running"  # not the previous "passed" next to a partial notebook
    versions = json.loads(cli(repo.path, "registry", "abalone_model", "--json", env=env).stdout)
    assert all(p["artifact_sha256"] and p["lineage"]["tree_hash"] for p in versions)  # no half-written row
    rerun = cli(repo.path, "run", "abalone_model", "--stage", "train", "--artifacts", str(artifacts), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "abalone_model/train_register: passed" in rerun.stdout
    after = json.loads(cli(repo.path, "registry", "abalone_model", "--json", env=env).stdout)
    assert [p["version"] for p in after] == list(range(len(after), 0, -1))  # numbered without gaps


def test_stop_takes_several_models_or_all(deployed):
    _, repo, env = deployed
    neither = cli(repo.path, "stop", env=env)
    assert neither.returncode == 2 and "or pass --all" in neither.stderr
    unknown = cli(repo.path, "stop", "abalone_model", "no_such_model", env=env)
    assert unknown.returncode != 0 and "no_such_model" in unknown.stderr
    assert all(e["status"] == "InService" for e in json.loads(cli(repo.path, "endpoints", "--json", env=env).stdout))
    stopped = cli(repo.path, "stop", "--all", env=env)
    assert stopped.returncode == 0, stopped.stderr
    listed = json.loads(cli(repo.path, "endpoints", "--json", env=env).stdout)
    assert listed and all(e["status"] == "Stopped" for e in listed)
    assert stopped.stdout.splitlines() == [f"{e['name']}: stopped" for e in listed]
    assert cli(repo.path, "stop", "--all", env=env).stdout.strip() == "no endpoint is running"
    # Stopping a stopped endpoint named by its environment is not an error; without one, nothing serves.
    again = cli(repo.path, "stop", "abalone_model", "--env", "production", env=env)
    assert again.returncode == 0 and again.stdout.strip() == "abalone-model: stopped"
    assert cli(repo.path, "stop", "abalone_model", env=env).stdout.strip() == "no endpoint is running"
