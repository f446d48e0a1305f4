"""What the CLI prints: the tables and one-line summaries of its commands, apart from the commands themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when used: `ci changed` and `--help` should not pay for the library
    from modelops.release.history import HistoryReport


def run_line(notebook_run) -> str:
    """One line per notebook run: its status, time, headline metrics and why it was reused or skipped."""
    from ci.artifacts import fmt  # imported when used: `ci changed` should not pay for the artifacts stack

    metrics = ", ".join(f"{k}={fmt(v)}" for k, v in notebook_run.headline.items())
    reason = f" [{notebook_run.reason}]" if notebook_run.reason else ""
    return (f"{notebook_run.model}/{notebook_run.notebook}: {notebook_run.status} "
            f"({notebook_run.duration:.1f}s) {metrics}{reason}")


def change_report(changes) -> str:
    """What ``ci changed`` found: the revisions compared, the changed and removed models, the orb's parameters."""
    import json

    how = {"merge-base": f"merge base with {changes.base_ref}", "first-parent": "HEAD~1, the first parent",
           "empty-tree": "the empty tree"}[changes.how]
    lines = [f"compared {changes.compared[:12]} ({how}) with HEAD {changes.head[:12]}: "
             f"{len(changes.paths)} file(s) changed", f"changed models: {', '.join(changes.models) or 'none'}"]
    if changes.removed:
        renamed = [f" (renamed to {changes.renamed[m]}/)" if m in changes.renamed else "" for m in changes.removed]
        lines.append("removed model folders, not trained: "
                     + ", ".join(f"{m}/{r}" for m, r in zip(changes.removed, renamed)))
    lines.append(f"pipeline parameters: {json.dumps(changes.parameters)}")
    return "\n".join(lines)


def tune_summary(model: str, record) -> str:
    """Two lines: the search's size and time, and the best configuration against the current one (validation)."""
    first = (f"{model}: {record.trials} trials ({record.trials_complete} complete, {record.trials_pruned} pruned, "
             f"{record.trials_failed} failed"
             + (f"; {record.resumed_trials} from an earlier run" if record.resumed_trials else "")
             + f") in {record.seconds:.0f}s")
    current = "-" if record.current_value is None else f"{record.current_value:.5g}"
    tuned = "-" if record.tuned_value is None else f"{record.tuned_value:.5g}"
    changes = ", ".join(f"{k}={'(removed)' if v is None else v}" for k, v in record.tuned_hyperparameters.items())
    return (f"{first}\n{record.objective}: tuned {tuned} against current {current} (best trial "
            f"{record.best_trial}: {record.best_value:.5g})\nchanges: {changes or 'none'}")


def describe_run(notebook_run) -> str:
    """One line for a deploy or gate run: what it did, or the run's status."""
    from modelops.records import DeployRecord, GateRecord

    record = notebook_run.record
    if isinstance(record, DeployRecord):
        state = "deployed" if record.deployed else "already live"
        return (f"{notebook_run.model}: {record.env_name}: v{record.version} {state} at {record.endpoint_url} "
                f"(previous: v{record.previous_version or '-'}); p50 {record.p50_latency_ms} ms")
    if isinstance(record, GateRecord):
        verdict = "passed" if record.gate_passed else "FAILED: " + "; ".join(record.gate_failures)
        return (f"{notebook_run.model}: promotion gate for staging's v{record.staging_version}: {verdict} "
                f"({record.rows_identical}/{record.rows_replayed} rows identical, p50 {record.gate_p50_ms} ms, "
                f"p99 {record.gate_p99_ms} ms, {record.errors} errors)")
    return f"{notebook_run.model}/{notebook_run.name}: {notebook_run.status}"


def transform_line(result) -> str:
    """One line for a batch scoring: the version, the rows (when counted), the time and where the answers are."""
    rows = f"{result.rows:,} rows" if result.rows is not None else "the table"
    return f"v{result.version} scored {rows} in {result.seconds:.1f}s: {result.output_uri}"


def monitor_summary(record) -> str:
    """One line for a monitor run: the window, its rows and what violated or drifted."""
    drifted = ", ".join(record.drifted_features) or "none"
    return (f"{record.endpoint} v{record.version}: {record.rows} rows in {record.records} records from {record.since} "
            f"to {record.until} ({record.skipped} skipped); {record.violations} violation(s), drifting: {drifted}; "
            f"{record.violations_uri}")


def registry_table(versions, gated: list[str]) -> str:
    """The registry's versions, newest first, with the gated metrics and who decided."""
    from ci.artifacts import fmt  # imported when used: `ci changed` should not pay for the artifacts stack

    lines = [f"{'version':>7}  {'status':<21} {'created':<20} {'branch':<16} {'tree':<8}  "
             + "  ".join(f"{m:>8}" for m in gated) + "  decided by"]
    for p in versions:
        metrics = "  ".join(f"{fmt(p.metrics.get(m, '-')):>8}" for m in gated)
        lines.append(f"{p.version:>7}  {p.status:<21} {p.created_at[:19]:<20} {(p.lineage.branch or '-')[:16]:<16} "
                     f"{(p.lineage.tree_hash or '-')[:8]:<8}  {metrics}  {p.status_by or ''}")
    return "\n".join(lines)


def endpoints_table(found, runtime: str | None) -> str:
    """Endpoints with status, version, uptime and URL; locally, the line that points boto3 at the runtime router."""
    lines = [f"{'endpoint':<24} {'status':<10} {'version':>7} {'previous':>8}  {'uptime':>8}  url"]
    for e in found:
        uptime = f"{e.uptime_seconds:.0f}s" if e.uptime_seconds is not None else "-"
        lines.append(f"{e.name:<24} {e.status:<10} {e.version or '-':>7} {e.previous_version or '-':>8}  {uptime:>8}  "
                     f"{e.url or '-'}")
        if e.message:
            lines.append(f"{'':<24} {e.message}")
    from modelops.entities import RUNTIME_URL_ENV

    if runtime:  # the local SageMaker Runtime: what boto3 and the SageMaker SDK need to reach these endpoints
        lines.append(f"\n# boto3 and the SageMaker SDK reach these endpoints with (any credentials):\n"
                     f"export {RUNTIME_URL_ENV}={runtime}")
    return "\n".join(lines)


def render_history(report: HistoryReport) -> str:
    """The report as lines a person reads top to bottom (``--json`` gives the same as data)."""
    from modelops.release.history import format_instant

    lines = [f"{report.model} at {format_instant(report.at)}:"]
    lines += [f"  {served.describe(report.model)}" for served in report.served]
    lines += ["", report.chain.describe(), ""]
    if not report.events:
        lines.append("no events yet")
        return "\n".join(lines)
    header = f"{'#':>4}  {'at (UTC)':<23} {'action':<12} {'env':<10} {'version':>7}  {'by':<16} {'commit':<12}  note"
    lines.append(header)
    for event in report.events:
        note = " ".join(part for part in (event.note or "", event.ci_url or "") if part)
        lines.append(f"{event.seq:>4}  {event.at[:23]:<23} {event.action:<12} {event.environment or '-':<10} "
                     f"{'v' + str(event.version):>7}  {(event.by or '-')[:16]:<16} {(event.git_commit or '-')[:12]:<12}"
                     f"  {note}".rstrip())
    return "\n".join(lines)
