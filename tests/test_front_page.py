"""The reviewer's front page (artifacts/index.html): what it says for each model, built from the run log."""

from __future__ import annotations

import pytest

from ci.artifacts import Artifacts, NotebookRun, model_reviews, render_index

TRAINED = {"version": 4, "status": "PendingManualApproval", "rmse": 2.0, "r2": 0.6, "mae": 1.5,
           "baseline_rmse": 3.2, "baseline_r2": 0.0, "quality_gates": {"rmse": True, "r2": True},
           "quality_thresholds": {"rmse": "<= 2.6", "r2": ">= 0.4"}, "package_id": "local:m/4", "tree_hash": "ab" * 20}
REVIEWED = {"verdict": "HOLD", "verdict_line": "HOLD: v4 is worse than champion v3 on r2 0.6 vs 0.7",
            "champion_version": 3, "challenger_version": 4,
            "comparison": [{"metric": "rmse", "challenger": 2.0, "champion": 2.1, "delta": -0.1, "change": "better",
                            "gated": True},
                           {"metric": "r2", "challenger": 0.6, "champion": 0.7, "delta": -0.1, "change": "worse",
                            "gated": True}]}


def runs(trained=TRAINED, reviewed=REVIEWED, failed=False) -> list[NotebookRun]:
    return [
        NotebookRun("m_model", "train_register", "passed", scraps=trained, html="m_model/train_register.html",
                    figures=[["residuals", "m_model/figures/train_register-residuals.png"]]),
        NotebookRun("m_model", "review", "failed" if failed else "passed", scraps={} if failed else reviewed,
                    error={"cell": 3, "ename": "KeyError", "evalue": "'rmse'"} if failed else None,
                    figures=[["residuals", "m_model/figures/review-residuals.png"]]),
    ]


def test_review_carries_verdict_deltas_against_champion_and_baseline_and_the_approve_command():
    [review] = model_reviews(runs())
    assert review.verdict == "HOLD" and review.champion_version == 3 and review.version == 4
    rows = {m["metric"]: m for m in review.metrics}
    assert rows["r2"]["change"] == "worse" and rows["rmse"]["change"] == "better"
    assert rows["rmse"]["lift"] == pytest.approx(-1.2)
    assert rows["rmse"]["lift_change"] == "better"  # a lower rmse than the mean's
    assert rows["r2"]["lift_change"] == "better"
    assert review.gates == [{"metric": "rmse", "value": 2.0, "threshold": "<= 2.6", "passed": True},
                            {"metric": "r2", "value": 0.6, "threshold": ">= 0.4", "passed": True}]
    assert review.figures == [("residuals", "m_model/figures/train_register-residuals.png")]  # shown once
    assert review.approve_command == "python -m ci approve m_model --version 4 --by YOUR_NAME"


def test_failed_notebook_is_the_verdict_and_an_approved_version_has_no_approve_command():
    [review] = model_reviews(runs(failed=True))
    assert review.verdict == "FAILED" and "review failed: KeyError" in review.verdict_line
    [review] = model_reviews(runs(trained={**TRAINED, "status": "Approved", "approved_by": "alice"}))
    assert review.approve_command is None and review.approved_by == "alice"


def test_page_escapes_what_notebooks_wrote(tmp_path):
    hostile = {**REVIEWED, "verdict_line": "<script>alert(1)</script>"}
    page = render_index(runs(reviewed=hostile))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'data-verdict="HOLD"' in page and "python -m ci approve m_model --version 4" in page


def test_approval_in_the_pipeline_updates_the_page(tmp_path):
    artifacts = Artifacts(tmp_path / "artifacts")
    for run in runs():
        artifacts.record(run)
    artifacts.update_scraps("m_model", "train_register", {"status": "Approved", "approved_by": "bob"})
    page = (artifacts.root / "index.html").read_text()
    assert "Approved by bob" in page and "To approve v4" not in page
    assert artifacts.metrics("m_model")["approved_by"] == "bob"
