"""``python -m ci history``'s text: what served at the instant, the chain's state, then the events as a table."""

from __future__ import annotations

from modelops.release.history import HistoryReport, format_instant


def render_history(report: HistoryReport) -> str:
    """The report as lines a person reads top to bottom (``--json`` gives the same as data)."""
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
