"""The reviewer's front page (artifacts/index.html): what it says for each model, built from the run log."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

import pytest

from ci.artifacts import Artifacts, NotebookRun, model_reviews, render_index
from modelops.records import Gate, MetricComparison, ReviewRecord, TrainRecord

TRAINED = TrainRecord(problem_type="regression", metrics={"rmse": 2.0, "r2": 0.6, "mae": 1.5},
                      null_metrics={"rmse": 3.2, "r2": 0.0},
                      gates=(Gate("rmse", 2.0, "<= 2.6", True), Gate("r2", 0.6, ">= 0.4", True)),
                      job_name="m-1", artifact_uri="file:///m.tar.gz", artifact_sha256="cd" * 32, dataset_id="d",
                      version=4, status="PendingManualApproval", package_id="local:m/4",
                      tree_hash="ab" * 20).to_scraps()
REVIEWED = ReviewRecord(verdict="HOLD", verdict_line="HOLD: v4 is worse than champion v3 on r2 0.6 vs 0.7",
                        champion_version=3, challenger_version=4,
                        comparison=(MetricComparison("rmse", 2.0, 2.1, 0.1, "better", True),
                                    MetricComparison("r2", 0.6, 0.7, -0.1, "worse", True))).to_scraps()


class _TableCells(HTMLParser):
    """The rows of a page's ``<table class="NAME">``, each a list of its cells' (text, class attribute)."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.inside, self.rows, self.cell = name, False, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("class") == self.name:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ["", attrs.get("class") or ""]

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((self.cell[0].strip(), self.cell[1]))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def table_rows(page: str, name: str) -> list[list[tuple[str, str]]]:
    parser = _TableCells(name)
    parser.feed(page)
    return parser.rows


def runs(trained=TRAINED, reviewed=REVIEWED, failed=False) -> list[NotebookRun]:
    return [
        NotebookRun("m_model", "train_register", "passed", scraps=trained, html="m_model/train_register.html",
                    figures=[["residuals", "m_model/figures/train_register-residuals.png"]]),
        NotebookRun("m_model", "review", "failed" if failed else "passed", scraps={} if failed else reviewed,
                    error={"cell": 3, "ename": "KeyError", "evalue": "'rmse'"} if failed else None,
                    figures=[["residuals", "m_model/figures/review-residuals.png"]]),
    ]


def test_review_carries_verdict_deltas_against_champion_and_null_model_and_the_approve_command():
    [review] = model_reviews(runs())
    assert review.verdict == "HOLD" and review.champion_version == 3 and review.version == 4
    rows = {m["metric"]: m for m in review.metrics}
    assert rows["r2"]["change"] == "worse" and rows["rmse"]["change"] == "better"
    assert rows["rmse"]["improvement"] == pytest.approx(0.1) and rows["r2"]["improvement"] == pytest.approx(-0.1)
    assert rows["rmse"]["lift"] == pytest.approx(1.2)  # 3.2 -> 2.0: positive, as the notebook's table shows it
    assert rows["rmse"]["lift_change"] == "better"  # a lower rmse than the mean's
    assert rows["r2"]["lift_change"] == "better"
    assert review.gates == [{"metric": "rmse", "value": 2.0, "threshold": "<= 2.6", "passed": True},
                            {"metric": "r2", "value": 0.6, "threshold": ">= 0.4", "passed": True}]
    assert review.figures == [("residuals", "m_model/figures/train_register-residuals.png")]  # shown once
    page = render_index(runs())
    header, rmse, r2 = table_rows(page, "metrics")
    assert [text for text, _ in header][3::3] == ["improvement vs champion", "improvement vs null model"]
    # metric, v4, champion v3, improvement vs champion, 95% interval, null model, improvement vs null model
    assert rmse == [("rmse *", ""), ("2", "num"), ("2.1", "num"), ("+0.1", "num better"), ("-", "interval"),
                    ("3.2", "num"), ("+1.2", "num better")]
    assert r2 == [("r2 *", ""), ("0.6", "num"), ("0.7", "num"), ("-0.1", "num worse"), ("-", "interval"),
                  ("0", "num"), ("+0.6", "num better")]
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
        artifacts.add_run(run)
    approved = replace(TrainRecord.from_scraps(TRAINED), status="Approved", approved_by="bob")
    artifacts.update_record("m_model", approved)
    page = (artifacts.root / "index.html").read_text()
    assert "Approved by bob" in page and "To approve v4" not in page
    assert artifacts.metrics("m_model")["approved_by"] == "bob"


def test_each_interval_is_drawn_beside_its_metric_with_the_rule_that_decided():
    from ci.artifacts import interval_plot

    reviewed = ReviewRecord(
        verdict="APPROVE", verdict_line="APPROVE: v4 is better than champion v3 beyond the 95% interval on rmse",
        champion_version=3, challenger_version=4, decided_by="better than the champion beyond the 95% interval",
        comparison=(MetricComparison("rmse", 2.0, 2.1, 0.1, "better", True, (0.05, 0.15)),
                    MetricComparison("r2", 0.6, 0.58, 0.02, "same", True, (-0.01, 0.04))),
        bootstrap={"method": "paired bootstrap", "rows": 418, "resamples": 2000, "seed": 1729}).to_scraps()
    page = render_index(runs(reviewed=reviewed))
    assert '<svg class="ci better"' in page and '<svg class="ci same"' in page
    assert "[+0.05, +0.15]" in page and "(rule: better than the champion beyond the 95% interval)" in page
    assert "paired\n    bootstrap of the challenger and the champion on the same 418 test rows (2000" in page
    [review] = model_reviews(runs(reviewed=reviewed))
    geometry = {m["metric"]: m["interval"] for m in review.metrics}
    rmse, r2 = geometry["rmse"], geometry["r2"]
    assert rmse["zero"] == 70 and rmse["zero"] < rmse["low"] < rmse["point"] < rmse["high"] <= 140  # right of 0
    assert r2["low"] < r2["zero"] < r2["point"] < r2["high"]  # the interval straddles 0
    assert interval_plot(None, 0.1) is None and review.bootstrap["rows"] == 418


def deploy_run(env: str, version: int) -> NotebookRun:
    from modelops.records import DeployRecord

    record = DeployRecord(version=version, endpoint_url=f"http://127.0.0.1:9/{env}", deployed=True,
                          predictions_identical=True, p50_latency_ms=1.5, p99_latency_ms=4.0, env_name=env,
                          endpoint="m-model" + ("-staging" if env == "staging" else ""),
                          package_id=f"local:m/{version}")
    return NotebookRun("m_model", "deploy", "passed", scraps=record.to_scraps(), variant=env,
                       html=f"m_model/deploy-{env}.html")


def gate_run(passed: bool = True, version: int = 4) -> NotebookRun:
    from modelops.records import GateRecord

    record = GateRecord(gate_passed=passed, staging_version=version, staging_package_id=f"local:m/{version}",
                           rows_replayed=418, rows_identical=418, errors=0, gate_error_rate=0.0, gate_p50_ms=1.7,
                           gate_p99_ms=612.0 if not passed else 5.2, slo_p50_ms=100, slo_p99_ms=500,
                           production_version=3,
                           gate_failures=() if passed else ("p99 latency 612.0 ms above the SLO's 500 ms",))
    return NotebookRun("m_model", "gate", "passed" if passed else "failed", scraps=record.to_scraps(),
                       html="m_model/gate.html",
                       error=None if passed else {"cell": 9, "ename": "PromotionGateFailed", "evalue": "p99 latency"})


def test_staging_and_production_side_by_side_with_the_gate_and_the_promote_command():
    trained = {**TRAINED, "status": "Approved"}
    [review] = model_reviews([*runs(trained=trained), deploy_run("production", 3), deploy_run("staging", 4),
                              gate_run()])
    assert review.deployed["staging"]["version"] == 4 and review.deployed["production"]["version"] == 3
    assert review.gate["gate_passed"] and review.promote_command == "python -m ci promote m_model --by YOUR_NAME"
    page = render_index([*runs(trained=trained), deploy_run("staging", 4), deploy_run("production", 3), gate_run()])
    assert "Staging and production" in page and 'data-env-version="4"' in page and 'data-env-version="3"' in page
    assert "Promotion gate passed</strong> for staging's\n    v4: 418 of 418 held-out rows" in page
    assert "request-promotion" in page and "python -m ci promote m_model --by YOUR_NAME" in page
    assert page.index("deploy-staging") < page.index("deploy-production")  # staging first in the notebooks list
    # Once production serves staging's version there is nothing to promote.
    [promoted] = model_reviews([*runs(trained=trained), deploy_run("staging", 4), deploy_run("production", 4),
                                gate_run()])
    assert promoted.promote_command is None


def test_a_failed_gate_is_the_verdict_and_says_production_is_untouched():
    [review] = model_reviews([*runs(trained={**TRAINED, "status": "Approved"}), deploy_run("staging", 4),
                              gate_run(passed=False)])
    assert review.verdict == "FAILED" and review.verdict_line.startswith("gate failed: PromotionGateFailed")
    assert review.promote_command is None
    page = render_index([*runs(trained={**TRAINED, "status": "Approved"}), deploy_run("staging", 4),
                         gate_run(passed=False)])
    assert 'data-gate="failed"' in page and "p99 latency 612.0 ms above the SLO&#39;s 500 ms" in page
    assert "Production is untouched (it serves v3)" in page
