"""The candidate train_register holds: it records its evaluation, registers, and glues its record once."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import modelops
from modelops.errors import QualityGateFailed
from modelops.notebook import candidate as module
from modelops.notebook.candidate import Candidate
from modelops.records import TrainRecord

RECORD = TrainRecord(problem_type="regression", metrics={"rmse": 2.1}, null_metrics={"rmse": 3.2}, gates=(),
                     job_name="job-1", artifact_uri="file:///model.tar.gz", artifact_sha256="ab" * 32,
                     dataset_id="d1")
PACKAGE = SimpleNamespace(version=3, status="PendingManualApproval", package_id="local:m/3",
                          lineage=SimpleNamespace(tree_hash="c0ffee"))


@pytest.fixture
def calls(monkeypatch):
    """What the candidate asked of the library: evaluations recorded, registrations, records glued."""
    seen = {"recorded": 0, "registered": [], "glued": []}

    def record_evaluation(ops, config, dataset, training, evaluation, gates):
        seen["recorded"] += 1
        return RECORD

    def register_model(ops, config, dataset, training, evaluation, gates, **kwargs):
        seen["registered"].append(kwargs)
        if gates == "failed":
            raise QualityGateFailed("m: quality gate failed")
        return PACKAGE

    monkeypatch.setattr(module, "record_evaluation", record_evaluation)
    monkeypatch.setattr(module, "register_model", register_model)
    monkeypatch.setattr(module, "glue_record", seen["glued"].append)
    return seen


def candidate(gates="passed") -> Candidate:
    return Candidate("ops", "config", "dataset", "training", "evaluation", gates)


def test_registering_glues_the_registered_record_once(calls):
    held = candidate()
    assert held.record_evaluation() == RECORD and held.record == RECORD
    assert held.register(notebook_artifact="m/train_register.html", baseline=None) is PACKAGE
    assert calls["recorded"] == 1 and held.package is PACKAGE
    assert calls["registered"] == [{"notebook_artifact": "m/train_register.html", "record": RECORD, "baseline": None}]
    assert calls["glued"] == [RECORD.with_registration(PACKAGE)]
    assert calls["glued"][0].version == 3 and calls["glued"][0].to_scraps()["null_rmse"] == 3.2


def test_registering_records_the_evaluation_first_when_nobody_did(calls):
    candidate().register()
    assert calls["recorded"] == 1 and len(calls["glued"]) == 1


def test_a_failed_gate_still_glues_the_unregistered_record_for_the_review(calls):
    held = candidate(gates="failed")
    with pytest.raises(QualityGateFailed):
        held.register()
    assert calls["glued"] == [RECORD] and calls["glued"][0].version is None and held.package is None


def test_the_notebooks_reach_the_candidate_through_the_facade():
    assert modelops.Candidate is Candidate
