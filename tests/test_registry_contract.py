"""The registry contract: every backend's registry must pass this suite (local: SQLite in tmp_path; SageMaker: moto)."""

from __future__ import annotations

import multiprocessing
import re
from datetime import UTC, datetime

import pytest

from modelops.entities import APPROVED, PENDING, REJECTED
from modelops.errors import RegistryError
from tests.support.registry import GROUP, register, training


def build_local(tmp_path):
    from modelops.backends.local.registry import LocalRegistry

    return LocalRegistry(tmp_path / "registry.db")


def build_sagemaker(tmp_path):
    from tests.support.aws import sagemaker_on_moto

    return sagemaker_on_moto().registry


BUILDERS = {"local": build_local, "sagemaker": build_sagemaker}
#: Builders that need moto's AWS (the ``aws`` fixture) to be running.
ON_MOTO = {"sagemaker"}


@pytest.fixture(params=sorted(BUILDERS))
def registry(request, tmp_path):
    if request.param in ON_MOTO:
        request.getfixturevalue("aws")
    return BUILDERS[request.param](tmp_path)


def test_a_version_records_its_monitoring_baseline(registry):
    baselines = {f"{part}_{file}": f"s3://modelops-test/job-1/baseline/{part}/{file}.json"
                 for part in ("data", "prediction", "quality") for file in ("statistics", "constraints")}
    package = register(registry, baselines=baselines)
    assert package.baselines == baselines
    assert registry.get(GROUP, package.version).baselines == baselines
    assert register(registry, tree="u" * 40, training=training("job-2", "b" * 64)).baselines == {}


def test_register_creates_pending_versions_in_order(registry):
    first = register(registry)
    second = register(registry, tree="u" * 40, training=training("job-2", "b" * 64))
    assert (first.version, second.version) == (1, 2)
    assert first.status == second.status == PENDING
    assert second.artifact_sha256 == "b" * 64 and second.lineage.tree_hash == "u" * 40
    assert second.lineage.notebook_artifact == "abalone_model/train_register.html"
    assert second.metrics == {"rmse": 2.1, "r2": 0.5} and second.hyperparameters["num_round"] == 5
    assert [p.version for p in registry.versions(GROUP)] == [2, 1]
    assert registry.get(GROUP, 1) == first
    assert registry.versions("no-such-group") == []


def test_approve_records_who_when_why(registry):
    register(registry)
    before = datetime.now(UTC)
    before = before.replace(microsecond=before.microsecond // 1000 * 1000)  # the registries keep milliseconds
    approved = registry.approve(GROUP, 1, by="alice", note="rmse fine")
    after = datetime.now(UTC)
    assert approved.status == APPROVED and approved.status_by == "alice" and approved.status_note == "rmse fine"
    # ISO 8601 in UTC, written when the decision was made.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", approved.status_at), approved.status_at
    assert before <= datetime.fromisoformat(approved.status_at) <= after
    assert registry.get(GROUP, 1).status_at == approved.status_at
    again = registry.approve(GROUP, 1, by="bob")  # approving twice changes nothing
    assert (again.status_by, again.status_at) == ("alice", approved.status_at)
    assert [p.version for p in registry.versions(GROUP, APPROVED)] == [1]
    assert registry.versions(GROUP, PENDING) == []


def test_rejected_version_cannot_be_approved(registry):
    register(registry)
    registry.reject(GROUP, 1, by="bob", note="leaks the target")
    with pytest.raises(RegistryError, match=r"v1 was rejected by bob .*\(leaks the target\).*train and register"):
        registry.approve(GROUP, 1, by="alice")
    assert registry.get(GROUP, 1).status == REJECTED


def test_approved_version_can_be_rejected_later(registry):
    register(registry)
    registry.approve(GROUP, 1, by="alice")
    assert registry.reject(GROUP, 1, by="carol", note="found a bug").status == REJECTED


def test_missing_version_lists_what_exists(registry):
    register(registry)
    with pytest.raises(RegistryError, match=r"has no version 7 \(its versions are \[1\]\)"):
        registry.approve(GROUP, 7, by="alice")
    with pytest.raises(RegistryError, match="has no versions yet"):
        registry.get("churn-model", 1)


def test_decision_needs_a_name(registry):
    register(registry)
    with pytest.raises(RegistryError, match="--by NAME"):
        registry.approve(GROUP, 1, by="  ")


def _register_many(path, count, queue):
    from modelops.backends.local.registry import LocalRegistry

    registry = LocalRegistry(path)
    queue.put([register(registry).version for _ in range(count)])


@pytest.mark.slow
def test_concurrent_registrations_from_two_processes_lose_nothing(tmp_path):
    path = tmp_path / "registry.db"
    build_local(tmp_path)  # create the schema once
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_register_many, args=(path, 15, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    got = sorted(queue.get(timeout=120) + queue.get(timeout=120))
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert got == list(range(1, 31))
    assert [p.version for p in build_local(tmp_path).versions(GROUP)] == list(range(30, 0, -1))


def _approve_while_registering(path, queue):
    from modelops.backends.local.registry import LocalRegistry

    registry = LocalRegistry(path)
    queue.put([registry.approve(GROUP, v, by="racer").status for v in range(1, 6)])


@pytest.mark.slow
def test_approvals_racing_new_registrations_lose_nothing(tmp_path):
    registry = build_local(tmp_path)
    for _ in range(5):
        register(registry)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    approver = context.Process(target=_approve_while_registering, args=(tmp_path / "registry.db", queue))
    approver.start()
    for _ in range(10):
        register(registry)
    assert queue.get(timeout=120) == [APPROVED] * 5
    approver.join(timeout=60)
    versions = registry.versions(GROUP)
    assert len(versions) == 15 and {p.version for p in versions} == set(range(1, 16))
    assert {p.version for p in versions if p.status == APPROVED} == {1, 2, 3, 4, 5}


def test_local_registry_keeps_an_audit_trail(tmp_path):
    registry = build_local(tmp_path)
    register(registry)
    registry.approve(GROUP, 1, by="alice", note="ok")
    assert [(e["action"], e["by"]) for e in registry.events(GROUP)] == [("registered", "feature"),
                                                                         (APPROVED, "alice")]
