"""Artifacts of notebook runs: HTML renderings, merged metrics, and the run log behind index.html/summary.md.

Layout of an artifacts folder::

    artifacts/
      index.html          the page a reviewer opens first (every model, notebook, status, headline metric)
      summary.md          the same, as Markdown (CI job summaries, PR comments)
      runs.json           the run log both are rendered from
      <model folder>/
        <notebook>.ipynb  the executed notebook (papermill output); a notebook keyed by a parameter (the
                          stages table's keyed_by) as <notebook>-<value>.ipynb, e.g. deploy-production.ipynb
        <notebook>.html   its HTML rendering (CircleCI shows .html artifacts in the browser)
        metrics.json      the JSON scraps of the model's notebooks, merged (a keyed run's under its name)
        figures/          each notebook's glued figures as PNG files, shown on index.html
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from ci.stages import notebook_for, notebook_order, record_type
from modelops import atomic
from modelops.backends.base import safe_key
from modelops.records import DeployRecord, GateRecord, Record, ReviewRecord, TrainRecord

RUN_LOG = "runs.json"

R = TypeVar("R", bound=Record)

# scrapbook's own output types have no HTML form (their values are in metrics.json). Filtered for the whole
# process: warnings.catch_warnings() is not thread-safe, and models export their notebooks in parallel threads.
warnings.filterwarnings("ignore", message="Your element with mimetype.*scrapbook", category=UserWarning)

@dataclass
class NotebookRun:
    """One notebook executed (or skipped) for one model."""

    model: str
    notebook: str
    status: str  # "passed" | "failed" | "skipped"
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    duration: float = 0.0
    ipynb: str | None = None  # relative to the artifacts folder
    html: str | None = None
    parameters: dict = field(default_factory=dict)
    scraps: dict = field(default_factory=dict)
    error: dict | None = None
    reason: str = ""
    fingerprint: str | None = None  # hash of the run's inputs (see ci.freshness)
    figures: list = field(default_factory=list)  # [scrap name, PNG path relative to the artifacts folder], in order
    variant: str = ""  # the value of the notebook's keyed_by parameter (deploy: staging | production)

    @property
    def name(self) -> str:
        """What this run is called in the artifacts: ``deploy-production`` for a keyed run, else the notebook."""
        return run_name(self.notebook, self.variant)

    @property
    def record(self) -> Record | None:
        """What the notebook handed on, as its record type (None: not in the stages table, or nothing glued)."""
        kind = record_type(self.notebook)
        if kind is None or not self.scraps:
            return None
        try:
            return kind.from_scraps(self.scraps)
        except (KeyError, TypeError, ValueError):
            return None  # a run logged by an older version, or a notebook that failed before gluing

    @property
    def headline(self) -> dict:
        record = self.record
        return record.headline() if record is not None else {}


def run_name(notebook: str, variant: str = "") -> str:
    """The name of a notebook's run in the artifacts (its files' stem)."""
    return f"{notebook}-{variant}" if variant else notebook


class Artifacts:
    """An artifacts folder: where each notebook's outputs go and the run log that indexes them."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    def model_dir(self, model: str) -> Path:
        return self.root / safe_key(model)  # whatever a name says, artifacts stay under the root

    def notebook_path(self, model: str, notebook: str, suffix: str) -> Path:
        return self.model_dir(model) / safe_key(f"{notebook}{suffix}")

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root).as_posix()

    def add_run(self, run: NotebookRun) -> None:
        """Add a run to the log (replacing an earlier run of the same notebook and variant) and re-render the pages."""
        with self._locked():
            runs = [r for r in self.runs() if (r.model, r.name) != (run.model, run.name)]
            runs.append(run)
            self._save(runs)
        self._write_metrics(run.model, runs)

    def update_record(self, model: str, record: Record) -> None:
        """Replace what a recorded run handed on (e.g. its registry status after an approval) and re-render."""
        notebook = notebook_for(type(record))
        with self._locked():
            runs = self.runs()
            for run in runs:
                if (run.model, run.notebook) == (model, notebook):
                    run.scraps.update(record.to_scraps())
            self._save(runs)
        self._write_metrics(model, runs)

    def _save(self, runs: list[NotebookRun]) -> None:
        atomic.write_json(self.root / RUN_LOG, {"runs": [asdict(r) for r in runs]})
        self._render(runs)

    def runs(self) -> list[NotebookRun]:
        try:
            records = json.loads((self.root / RUN_LOG).read_text())["runs"]
        except (FileNotFoundError, ValueError, KeyError):
            return []
        return [NotebookRun(**r) for r in records]

    def previous(self, model: str, notebook: str, variant: str = "") -> NotebookRun | None:
        """The last recorded run of a model's notebook (with that value of its keyed_by parameter)."""
        return next((r for r in self.runs() if (r.model, r.name) == (model, run_name(notebook, variant))), None)

    def metrics(self, model: str) -> dict:
        try:
            return json.loads((self.model_dir(model) / "metrics.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_metrics(self, model: str, runs: list[NotebookRun]) -> None:
        merged: dict = {}
        for run in runs:
            if run.model == model and run.status in ("passed", "skipped"):
                # A keyed run's scraps go under its name: deploy-staging's and deploy-production's would collide.
                merged.update({run.name: run.scraps} if run.variant else run.scraps)
        atomic.write_json(self.model_dir(model) / "metrics.json", merged)

    def _render(self, runs: list[NotebookRun]) -> None:
        atomic.write_text(self.root / "index.html", render_index(runs))
        atomic.write_text(self.root / "summary.md", render_summary(runs))

    def _locked(self):
        # Models run in parallel processes share one run log: serialise its read-modify-write.
        return atomic.locked(self.root / ".runs.lock")


def extract_figures(ipynb: Path, folder: Path, prefix: str) -> dict[str, Path]:
    """Write each figure an executed notebook glued (a display scrap with a PNG) to ``folder/prefix-name.png``.

    Returns:
        The PNG files by scrap name, in notebook order.
    """
    import base64

    import nbformat

    figures = {}
    for cell in nbformat.read(ipynb, as_version=4).cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            png = output.get("data", {}).get("image/png")
            if name and png:
                path = folder / safe_key(f"{prefix}-{name}.png")
                atomic.write_bytes(path, base64.b64decode(png))
                figures[name] = path
    return figures


def export_html(ipynb: Path, html: Path) -> Path:
    """Render an executed notebook to a standalone HTML page (images inline), written atomically."""
    import nbformat

    notebook = nbformat.read(ipynb, as_version=4)
    body, _ = _html_exporter().from_notebook_node(notebook)
    return atomic.write_text(html, body)


@lru_cache(maxsize=1)
def _html_exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(extra_template_basedirs=[str(Path(__file__).parent / "templates" / "nbconvert")],
                        template_name="offline")


def render_summary(runs: list[NotebookRun]) -> str:
    lines = ["# Notebook runs", "", "| model | notebook | status | time (s) | headline | report |",
             "|---|---|---|---:|---|---|"]
    for run in sorted(runs, key=_order):
        headline = ", ".join(f"{k}={fmt(v)}" for k, v in run.headline.items()) or run.reason
        report = f"[html]({run.html})" if run.html else ""
        lines.append(f"| {run.model} | {run.name} | {run.status} | {run.duration:.1f} | {headline} | {report} |")
    failed = [r for r in runs if r.status == "failed"]
    for run in failed:
        error = run.error or {}
        lines += ["", f"**{run.model}/{run.name} failed** at cell {error.get('cell', '?')}: "
                      f"`{error.get('ename', '')}: {error.get('evalue', '')}`"]
    return "\n".join(lines) + "\n"


@dataclass
class ModelReview:
    """What a reviewer needs about one model before approving: verdict, metrics, plots, the version to approve."""

    model: str
    verdict: str  # APPROVE | HOLD | REJECT (the review's), FAILED (a notebook failed), PENDING (not reviewed yet)
    verdict_line: str
    version: int | None
    status: str | None
    gates: list[dict]  # metric, value, threshold, passed
    metrics: list[dict]  # metric, value, champion, improvement, change, null_model, lift, lift_change, gated
    champion_version: int | None
    figures: list[tuple[str, str]]  # (title, PNG path) of train_register's and review's figures
    other_figures: list[tuple[str, str]]  # gather_data's and deploy's
    runs: list[NotebookRun]
    deployed: dict[str, dict]  # environment (staging, production) -> what its deploy handed on, side by side
    lineage: dict
    approved_by: str | None = None
    notes: list[str] = field(default_factory=list)  # the review's notes (library changed, dataset changed, ...)
    decided_by: str = ""  # the rule that decided the verdict
    bootstrap: dict = field(default_factory=dict)  # how the intervals were computed (rows, resamples, seed)
    gate: dict | None = None  # the promotion gate's record (what staging served, figures, SLO, failures)

    @property
    def approve_command(self) -> str | None:
        if self.version is None or self.status not in (None, "PendingManualApproval"):
            return None
        return f"python -m ci approve {self.model} --version {self.version} --by YOUR_NAME"

    @property
    def promote_command(self) -> str | None:
        """Shown while staging's version passed the gate and production does not serve it yet."""
        gate, production = self.gate, self.deployed.get("production")
        if not gate or not gate.get("gate_passed"):
            return None
        if production and production.get("version") == gate.get("staging_version"):
            return None
        return f"python -m ci promote {self.model} --by YOUR_NAME"


def model_reviews(runs: list[NotebookRun]) -> list[ModelReview]:
    """One ModelReview per model in the run log, in model order."""
    from modelops.metrics import metric

    reviews = []
    for model in sorted({r.model for r in runs}):
        mine = sorted((r for r in runs if r.model == model), key=_order)
        trained = latest(mine, TrainRecord)
        review = latest(mine, ReviewRecord)
        deployed = {r.record.env_name: r.record.to_scraps() for r in mine
                    if isinstance(r.record, DeployRecord) and r.status != "failed"}
        gate = latest(mine, GateRecord)
        failed = [r for r in mine if r.status == "failed"]
        if review is not None and (not failed or review.verdict == "REJECT"):
            verdict, line = review.verdict, review.verdict_line
        elif failed:
            error = failed[0].error or {}
            verdict = "FAILED"
            line = f"{failed[0].name} failed: {error.get('ename', '')}: {error.get('evalue', '')}"
        else:
            verdict, line = "PENDING", "not reviewed yet: run the train stage"
        metrics = []
        if review is not None:
            rows = review.comparison
        elif trained is not None:
            rows = [_uncompared(name, value, trained) for name, value in trained.metrics.items()]
        else:
            rows = []
        for row in rows:
            null = trained.null_metrics.get(row.metric) if trained else None
            measure = metric(row.metric)
            metrics.append({**asdict(row), "value": row.challenger, "null_model": null,
                            "lift": measure.improvement(row.challenger, null),
                            "lift_change": measure.change(row.challenger, null),
                            "interval": interval_plot(row.ci95, row.improvement)})
        gates = [asdict(g) for g in trained.gates] if trained else []
        shown: dict[str, str] = {}
        for run in mine:
            if isinstance(run.record, (TrainRecord, ReviewRecord)):
                shown.update({name: path for name, path in run.figures if name not in shown})
        figures = [(_title(name), path) for name, path in shown.items()]
        other = [(f"{r.name}: {_title(name)}", path) for r in mine
                 if not isinstance(r.record, (TrainRecord, ReviewRecord)) for name, path in r.figures]
        lineage = {k: getattr(trained, k) for k in ("package_id", "tree_hash", "artifact_sha256", "library_hash")
                   if trained and getattr(trained, k)}
        reviews.append(ModelReview(
            model, verdict, line, trained.version if trained else None, trained.status if trained else None, gates,
            metrics, review.champion_version if review else None, figures, other, mine, deployed, lineage,
            trained.approved_by if trained else None, list(review.notes) if review else [],
            review.decided_by if review else "", dict(review.bootstrap) if review else {},
            gate.to_scraps() if gate else None))
    return reviews


#: The front page's interval plot: width and height in pixels.
INTERVAL_WIDTH, INTERVAL_HEIGHT = 140, 18


def interval_plot(ci95, improvement: float | None) -> dict | None:
    """Where the front page draws an improvement's 95% interval: 0 in the middle, the scale fitted to the interval.

    Returns the x positions (pixels) of the interval's ends, the point estimate and zero, or None without interval.
    """
    if not ci95 or improvement is None or any(v is None for v in ci95):
        return None
    low, high = ci95
    reach = max(abs(low), abs(high), abs(improvement), 1e-12) * 1.15
    half = INTERVAL_WIDTH / 2 - 3

    def x(value: float) -> float:
        return round(INTERVAL_WIDTH / 2 + value / reach * half, 1)

    return {"low": x(low), "high": x(high), "point": x(improvement), "zero": x(0.0), "width": INTERVAL_WIDTH,
            "height": INTERVAL_HEIGHT, "title": f"95% interval of the improvement: [{low:+.4g}, {high:+.4g}]"}


def latest(runs: list[NotebookRun], kind: type[R]) -> R | None:
    """The newest record of ``kind`` that one of ``runs`` handed on (None if none did)."""
    for run in reversed(runs):
        record = run.record
        if isinstance(record, kind):
            return record
    return None


def _uncompared(name: str, value: float, trained: TrainRecord):
    from modelops.records import MetricComparison

    return MetricComparison(name, value, gated=any(g.metric == name for g in trained.gates))


def _title(scrap_name: str) -> str:
    return scrap_name.replace("_", " ")


def render_index(runs: list[NotebookRun]) -> str:
    return _index_template().render(reviews=model_reviews(runs),
                                    generated=datetime.now(UTC).isoformat(timespec="seconds"))


@lru_cache(maxsize=1)
def _index_template():
    """The front page's template, compiled once per process: every run logged re-renders the page, and compiling
    the template cost more than everything else a reused run does."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("ci", "templates"), autoescape=True)
    environment.filters["fmt"] = fmt
    environment.filters["signed"] = lambda v: "" if v is None else f"{v:+.4g}"
    return environment.get_template("index.html.j2")


def _order(run: NotebookRun) -> tuple:
    return run.model, notebook_order(run.notebook), run.notebook, _variant_order(run.variant)


def _variant_order(variant: str) -> tuple:
    from modelops.config import ENVIRONMENT_NAMES

    return (ENVIRONMENT_NAMES.index(variant), variant) if variant in ENVIRONMENT_NAMES else (len(ENVIRONMENT_NAMES),
                                                                                              variant)


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
