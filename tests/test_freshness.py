"""When a previous run of the promotion gate stands in for running it again: every condition, without a kernel.

The same rule through real notebooks and servers (a rerun that executes nothing, a restarted staging server that
runs the gate again) is in tests/test_model_notebooks.py.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from ci.artifacts import Artifacts, NotebookRun
from ci.freshness import StageContext, reusable
from ci.models import ModelFolder
from ci.stages import NOTEBOOKS
from modelops.entities import GATE_FAILED, GATE_PASSED, IN_SERVICE, EndpointStatus, Event
from modelops.records import GateRecord
from tests.support.paths import ROOT

PACKAGE = "local:abalone-model/1"
SERVER = "pid 4242 started 2026-12-07T10:00:00+00:00 loaded 2026-12-07T10:00:01+00:00"
GATED = GateRecord(gate_passed=True, staging_version=1, staging_package_id=PACKAGE, rows_replayed=418,
                   rows_identical=418, errors=0, gate_error_rate=0.0, gate_p50_ms=2.0, gate_p99_ms=9.0,
                   staging_server=SERVER)


def serving(name: str, package_id: str = PACKAGE, server_id: str | None = SERVER, status: str = IN_SERVICE):
    return EndpointStatus(name=name, status=status, version=int(package_id.rsplit("/", 1)[1]), previous_version=None,
                          url=None, package_id=package_id, server_id=server_id)


def gate_event(action: str, package_id: str = PACKAGE) -> Event:
    return Event(group="abalone-model", version=1, at="2026-12-07T10:00:05.000+00:00", action=action,
                 environment="staging", package_id=package_id)


class World:
    """What the backend says now: the two endpoints and the model's history."""

    def __init__(self):
        self.endpoints = {"abalone-model-staging": serving("abalone-model-staging"),
                          "abalone-model": serving("abalone-model", server_id="pid 99 ...")}
        self.events = [gate_event(GATE_PASSED)]

    def ops(self):
        return SimpleNamespace(endpoints=SimpleNamespace(status=self.endpoints.get),
                               history=SimpleNamespace(events=lambda group: list(self.events)))


@pytest.fixture
def world():
    return World()


def reused_gate(world: World, tmp_path, record: GateRecord = GATED):
    """The previous gate run, as the runner asks whether it stands in (same fingerprint: inputs unchanged)."""
    artifacts = Artifacts(tmp_path / "artifacts")
    executed = artifacts.notebook_path("abalone_model", "gate", ".ipynb")
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.write_text("{}")
    artifacts.add_run(NotebookRun(model="abalone_model", notebook="gate", status="passed", fingerprint="same",
                                  ipynb=artifacts.relative(executed), scraps=record.to_scraps()))
    ctx = StageContext(ModelFolder(ROOT / "abalone_model"), "deploy", "local", world.ops(), artifacts, {}, runs=[])
    return reusable(NOTEBOOKS["gate"], "same", ctx)


def test_a_gate_that_passed_on_the_staging_server_still_running_stands_in_and_says_why(world, tmp_path):
    reuse = reused_gate(world, tmp_path)
    assert reuse is not None and reuse.run.record == GATED
    assert reuse.reason.startswith("up to date: inputs unchanged since ")
    assert reuse.reason.endswith(f"; production serves v1, the package staging serves; its newest gate passed at "
                                 f"2026-12-07T10:00:05.000+00:00 against the staging server still running ({SERVER})")


def test_a_restarted_staging_server_runs_the_gate_again(world, tmp_path):
    world.endpoints["abalone-model-staging"] = serving("abalone-model-staging", server_id=SERVER.replace("4242", "77"))
    assert reused_gate(world, tmp_path) is None


def test_a_staging_server_that_no_longer_serves_runs_the_gate_again(world, tmp_path):
    world.endpoints["abalone-model-staging"] = serving("abalone-model-staging", server_id=None, status="Down")
    assert reused_gate(world, tmp_path) is None


@pytest.mark.parametrize("production", [None, serving("abalone-model", "local:abalone-model/2")],
                         ids=["nothing in production", "production serves another package"])
def test_the_gate_runs_again_until_production_serves_what_staging_serves(world, tmp_path, production):
    world.endpoints["abalone-model"] = production
    assert reused_gate(world, tmp_path) is None


def test_another_package_on_staging_runs_the_gate_again(world, tmp_path):
    for name in world.endpoints:
        world.endpoints[name] = serving(name, "local:abalone-model/2")
    assert reused_gate(world, tmp_path) is None


def test_a_newer_failed_gate_for_the_package_runs_it_again(world, tmp_path):
    world.events.append(gate_event(GATE_FAILED))
    assert reused_gate(world, tmp_path) is None
    world.events = [gate_event(GATE_PASSED, "local:abalone-model/2")]  # no gate at all for the package served
    assert reused_gate(world, tmp_path) is None


@pytest.mark.parametrize("record", [replace(GATED, gate_passed=False), replace(GATED, staging_server=None)],
                         ids=["it failed", "it did not record the server (an older run)"])
def test_a_gate_run_that_failed_or_did_not_record_its_server_never_stands_in(world, tmp_path, record):
    assert reused_gate(world, tmp_path, record) is None
