"""approve / reject / registry from the command line: exit codes, one-line errors, the default version."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from modelops.review.lineage import working_tree_hash
from tests.support.paths import ROOT
from tests.support.registry import seed

pytestmark = pytest.mark.slow  # the CLI in subprocesses


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ci", *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ))


def test_approve_defaults_to_the_pending_version_of_this_folder(home):
    here = working_tree_hash(ROOT / "abalone_model")
    registry = seed(home, [here, "0" * 40])  # v1 from this folder, v2 from some other tree
    result = cli("approve", "abalone_model", "--by", "alice", "--note", "reviewed")
    assert result.returncode == 0, result.stderr
    assert "abalone-model v1: Approved by alice" in result.stdout
    assert registry.get("abalone-model", 1).status_note == "reviewed"
    assert registry.get("abalone-model", 2).status == "PendingManualApproval"


def test_approve_without_match_lists_pending_versions(home):
    seed(home, ["0" * 40])
    result = cli("approve", "abalone_model", "--by", "alice")
    assert result.returncode == 1
    assert "pending versions: v1 (tree 00000000, feature)" in result.stderr and "--version N" in result.stderr
    assert "Traceback" not in result.stderr


def test_reject_then_approve_is_refused(home):
    seed(home, ["0" * 40])
    assert cli("reject", "abalone_model", "--version", "1", "--by", "bob", "--note", "bad").returncode == 0
    result = cli("approve", "abalone_model", "--version", "1", "--by", "alice")
    assert result.returncode == 1 and "was rejected by bob" in result.stderr
    missing = cli("approve", "abalone_model", "--version", "9", "--by", "alice")
    assert missing.returncode == 1 and "has no version 9" in missing.stderr
    no_name = cli("approve", "abalone_model", "--version", "1")
    assert no_name.returncode == 2 and "--by" in no_name.stderr


def test_the_registry_command_lists_versions_as_a_table_and_as_json(home):
    seed(home, ["0" * 40, "1" * 40])
    cli("approve", "abalone_model", "--version", "2", "--by", "alice")
    table = cli("registry", "abalone_model")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["version", "status"] and "rmse" in lines[0]
    assert lines[1].split()[:2] == ["2", "Approved"] and lines[1].split()[-1] == "alice"
    records = json.loads(cli("registry", "abalone_model", "--json").stdout)
    assert [(r["version"], r["status"]) for r in records] == [(2, "Approved"), (1, "PendingManualApproval")]
    assert records[0]["lineage"]["tree_hash"] == "1" * 40


def test_registry_of_a_model_with_no_versions(home):
    result = cli("registry", "churn_model")
    assert result.returncode == 0 and "no versions registered yet" in result.stdout
