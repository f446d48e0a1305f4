"""Artifacts of notebook runs: HTML renderings, merged metrics, and the run log behind index.html/summary.md.

Layout of an artifacts folder::

    artifacts/
      index.html          the page a reviewer opens first (every model, notebook, status, headline metric)
      summary.md          the same, as Markdown (CI job summaries, PR comments)
      runs.json           the run log both are rendered from
      <model folder>/
        <notebook>.ipynb  the executed notebook (papermill output)
        <notebook>.html   its HTML rendering (CircleCI shows .html artifacts in the browser)
        metrics.json      the JSON scraps of the model's notebooks, merged
"""

from __future__ import annotations

import fcntl
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from modelops import atomic
from modelops.backends.base import safe_key

RUN_LOG = "runs.json"

#: Scraps shown as a notebook's headline metrics, in order of preference.
HEADLINE_KEYS = ("verdict", "version", "rmse", "r2", "auc", "accuracy", "f1", "endpoint_metric", "p50_latency_ms",
                 "rows_train", "rows_test", "n_features")


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

    @property
    def headline(self) -> dict:
        picked = {k: self.scraps[k] for k in HEADLINE_KEYS if k in self.scraps}
        return dict(list(picked.items())[:3])


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

    def record(self, run: NotebookRun) -> None:
        """Add a run to the log (replacing an earlier run of the same notebook) and re-render the pages."""
        with self._locked():
            runs = [r for r in self.runs() if (r.model, r.notebook) != (run.model, run.notebook)]
            runs.append(run)
            atomic.write_json(self.root / RUN_LOG, {"runs": [asdict(r) for r in runs]})
            self._render(runs)
        self._write_metrics(run.model, runs)

    def runs(self) -> list[NotebookRun]:
        try:
            records = json.loads((self.root / RUN_LOG).read_text())["runs"]
        except (FileNotFoundError, ValueError, KeyError):
            return []
        return [NotebookRun(**r) for r in records]

    def previous(self, model: str, notebook: str) -> NotebookRun | None:
        """The last recorded run of a model's notebook."""
        return next((r for r in self.runs() if (r.model, r.notebook) == (model, notebook)), None)

    def metrics(self, model: str) -> dict:
        try:
            return json.loads((self.model_dir(model) / "metrics.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_metrics(self, model: str, runs: list[NotebookRun]) -> None:
        merged: dict = {}
        for run in runs:
            if run.model == model and run.status in ("passed", "skipped"):
                merged.update(run.scraps)
        atomic.write_json(self.model_dir(model) / "metrics.json", merged)

    def _render(self, runs: list[NotebookRun]) -> None:
        atomic.write_text(self.root / "index.html", render_index(runs))
        atomic.write_text(self.root / "summary.md", render_summary(runs))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Models run in parallel processes share one run log: serialise its read-modify-write.
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".runs.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def export_html(ipynb: Path, html: Path) -> Path:
    """Render an executed notebook to a standalone HTML page (images inline), written atomically."""
    import nbformat

    notebook = nbformat.read(ipynb, as_version=4)
    with warnings.catch_warnings():
        # scrapbook's own output type has no HTML form; the value is in metrics.json instead.
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        body, _ = _html_exporter().from_notebook_node(notebook)
    return atomic.write_text(html, body)


@lru_cache(maxsize=1)
def _html_exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter()


def render_summary(runs: list[NotebookRun]) -> str:
    lines = ["# Notebook runs", "", "| model | notebook | status | time (s) | headline | report |",
             "|---|---|---|---:|---|---|"]
    for run in sorted(runs, key=_order):
        headline = ", ".join(f"{k}={fmt(v)}" for k, v in run.headline.items()) or run.reason
        report = f"[html]({run.html})" if run.html else ""
        lines.append(f"| {run.model} | {run.notebook} | {run.status} | {run.duration:.1f} | {headline} | {report} |")
    failed = [r for r in runs if r.status == "failed"]
    for run in failed:
        error = run.error or {}
        lines += ["", f"**{run.model}/{run.notebook} failed** at cell {error.get('cell', '?')}: "
                      f"`{error.get('ename', '')}: {error.get('evalue', '')}`"]
    return "\n".join(lines) + "\n"


def render_index(runs: list[NotebookRun]) -> str:
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("ci", "templates"), autoescape=True)
    environment.filters["fmt"] = fmt
    return environment.get_template("index.html.j2").render(
        runs=sorted(runs, key=_order), generated=datetime.now(UTC).isoformat(timespec="seconds"),
        failed=[r for r in runs if r.status == "failed"],
    )


def _order(run: NotebookRun) -> tuple:
    from ci.runner import STAGES

    order = {name: i for i, name in enumerate(STAGES["all"])}
    return run.model, order.get(run.notebook, 99), run.notebook


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
