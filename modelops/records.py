"""What each notebook hands on, as typed records: the one contract between notebooks and the pipeline.

A notebook glues its record (``modelops.glue_record``); ``ci`` reads it back with ``from_scraps`` and never
by raw scrap key. ``to_scraps`` writes flat, plain names, because they are what ``metrics.json`` and a
reviewer see: test metrics under their own names (``rmse``, ``auc``), the null model's as ``null_<name>``,
the endpoint's as ``endpoint_<name>``. Each record reads back from its own scraps exactly
(``R.from_scraps(r.to_scraps()) == r``, tested for every record).

A stage that is added later (tuning, promotion, monitoring) adds its record here and its row to the stages
table (``ci/stages.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

from modelops.metrics import is_metric

if TYPE_CHECKING:  # for the annotations only: release builds on records, not the other way round
    from modelops.entities import Deployment, PackageVersion
    from modelops.release.deploy import EndpointCheck, Latency


def _metrics(scraps: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The metric values among ``scraps`` whose key is ``prefix + <metric name>``."""
    return {key[len(prefix):]: value for key, value in scraps.items()
            if key.startswith(prefix) and is_metric(key[len(prefix):]) and value is not None}


#: The null model's metrics were named ``baseline_<name>`` until "baseline" came to mean only the monitoring
#: statistics; packages registered and runs recorded before then still carry that prefix.
_OLD_NULL_PREFIX = "baseline_"


def null_model_metrics(values: dict[str, Any]) -> dict[str, float]:
    """The null model's metrics among scraps or a package's metrics: ``null_<name>``, or the old ``baseline_<name>``."""
    return {**_metrics(values, _OLD_NULL_PREFIX), **_metrics(values, "null_")}


class Record:
    """Base of the notebook records: plain fields in, plain scraps out."""

    #: Scrap keys shown as the notebook's headline on the summary page, in order of preference.
    headline_keys: ClassVar[tuple[str, ...]] = ()

    def to_scraps(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]):
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _frozen(v) for k, v in scraps.items() if k in names})

    def _repr_markdown_(self) -> str:
        """What a notebook reader sees where the record is glued: every value handed on, one per row."""
        rows = "".join(f"| `{k}` | {_cell(v)} |\n" for k, v in self.to_scraps().items() if v not in (None, [], {}))
        return f"**{type(self).__name__}** (handed on to the pipeline)\n\n| scrap | value |\n|---|---|\n{rows}"

    def headline(self) -> dict[str, Any]:
        """Up to three values that sum the notebook up (for the run summary)."""
        scraps = self.to_scraps()
        picked = {k: scraps[k] for k in self.headline_keys if scraps.get(k) is not None}
        return dict(list(picked.items())[:3])


def _cell(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    text = text if len(text) <= 120 else text[:117] + "..."
    return text.replace("|", "\\|").replace("\n", " ")


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


@dataclass(frozen=True)
class GatherRecord(Record):
    """gather_data: the dataset it wrote (or found already written)."""

    dataset_id: str
    data_sha256: str
    manifest_uri: str | None = None
    data_source: str | None = None
    n_features: int | None = None
    rows: dict[str, int] = field(default_factory=dict)  # split -> rows
    target_summary: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> {statistic: value}
    rows_without_target: int = 0  # raw rows left out because their target was empty

    headline_keys: ClassVar[tuple[str, ...]] = ("rows_train", "rows_test", "n_features")

    def to_scraps(self) -> dict[str, Any]:
        values: dict[str, Any] = {f"rows_{split}": rows for split, rows in self.rows.items()}
        values.update(dataset_id=self.dataset_id, data_sha256=self.data_sha256, manifest_uri=self.manifest_uri,
                      data_source=self.data_source, n_features=self.n_features,
                      rows_without_target=self.rows_without_target)
        for split, summary in self.target_summary.items():
            values.update({f"{key}_{split}": value for key, value in summary.items()})
        return values

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]) -> GatherRecord:
        splits = [k.removeprefix("rows_") for k in scraps if k.startswith("rows_") and k != "rows_without_target"]
        summary: dict[str, dict[str, float]] = {split: {} for split in splits}
        for key, value in scraps.items():
            for split in splits:
                if key.endswith(f"_{split}") and not key.startswith("rows_") and key != "rows_without_target":
                    summary[split][key[: -len(split) - 1]] = value
        return cls(dataset_id=scraps["dataset_id"], data_sha256=scraps["data_sha256"],
                   manifest_uri=scraps.get("manifest_uri"), data_source=scraps.get("data_source"),
                   n_features=scraps.get("n_features"), rows={s: scraps[f"rows_{s}"] for s in splits},
                   target_summary={s: v for s, v in summary.items() if v},
                   rows_without_target=scraps.get("rows_without_target") or 0)


@dataclass(frozen=True)
class Gate:
    """One quality gate's outcome."""

    metric: str
    value: float | None
    threshold: str
    passed: bool


@dataclass(frozen=True)
class TrainRecord(Record):
    """train_register: the trained model's test evaluation, its gates and, once registered, its version.

    Glued once, by ``Candidate.register``: registered, or with ``version`` None when a gate failed (what the
    review of that run reads).
    """

    problem_type: str
    metrics: dict[str, float]
    null_metrics: dict[str, float]  # the null model's (training mean, majority class, class shares)
    gates: tuple[Gate, ...]
    job_name: str
    artifact_uri: str
    artifact_sha256: str
    dataset_id: str
    evaluation_uri: str | None = None  # the evaluation report in the backend's store
    test_rows: int | None = None
    decision_threshold: float | None = None
    top_features: tuple[str, ...] = ()
    version: int | None = None  # None: not registered (a gate failed, or registration did not run)
    status: str | None = None
    package_id: str | None = None
    tree_hash: str | None = None
    library_hash: str | None = None
    approved_by: str | None = None

    headline_keys: ClassVar[tuple[str, ...]] = ("version", "rmse", "r2", "auc", "accuracy", "f1", "f1_macro")

    @property
    def quality_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    @property
    def registered(self) -> bool:
        return self.version is not None

    def with_registration(self, package) -> TrainRecord:
        """This record once ``package`` (a PackageVersion) registered it."""
        return replace(self, version=package.version, status=package.status, package_id=package.package_id,
                       tree_hash=package.lineage.tree_hash)

    def to_scraps(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.metrics)
        values.update({f"null_{k}": v for k, v in self.null_metrics.items()})
        values.update(
            problem_type=self.problem_type, quality_passed=self.quality_passed,
            quality_gates={g.metric: g.passed for g in self.gates},
            quality_thresholds={g.metric: g.threshold for g in self.gates},
            job_name=self.job_name, artifact_uri=self.artifact_uri, artifact_sha256=self.artifact_sha256,
            dataset_id=self.dataset_id, evaluation_uri=self.evaluation_uri, test_rows=self.test_rows,
            decision_threshold=self.decision_threshold, top_features=list(self.top_features), version=self.version,
            status=self.status, package_id=self.package_id, tree_hash=self.tree_hash,
            library_hash=self.library_hash, approved_by=self.approved_by)
        return values

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]) -> TrainRecord:
        metrics = _metrics(scraps)
        thresholds = scraps.get("quality_thresholds") or {}
        gates = tuple(Gate(name, metrics.get(name), thresholds.get(name, ""), bool(passed))
                      for name, passed in (scraps.get("quality_gates") or {}).items())
        return cls(
            problem_type=scraps.get("problem_type", ""), metrics=metrics, null_metrics=null_model_metrics(scraps),
            gates=gates, job_name=scraps.get("job_name", ""), artifact_uri=scraps.get("artifact_uri", ""),
            artifact_sha256=scraps.get("artifact_sha256", ""), dataset_id=scraps.get("dataset_id", ""),
            evaluation_uri=scraps.get("evaluation_uri"), test_rows=scraps.get("test_rows"),
            decision_threshold=scraps.get("decision_threshold"), top_features=tuple(scraps.get("top_features") or ()),
            version=scraps.get("version"), status=scraps.get("status"), package_id=scraps.get("package_id"),
            tree_hash=scraps.get("tree_hash"), library_hash=scraps.get("library_hash"),
            approved_by=scraps.get("approved_by"))


@dataclass(frozen=True)
class MetricComparison:
    """One metric of the challenger against the champion (``improvement`` > 0 means better)."""

    metric: str
    challenger: float
    champion: float | None = None
    improvement: float | None = None
    change: str = "-"  # better | worse | same | -
    gated: bool = False
    # The 95% interval of the improvement (challenger against champion on the same test rows, signed so that a
    # positive number is better, as ``improvement``): [low, high] in metrics.json.
    ci95: tuple[float, float] | None = None


@dataclass(frozen=True)
class ReviewRecord(Record):
    """review: the challenger against the champion, and the verdict."""

    verdict: str  # APPROVE | HOLD | REJECT
    verdict_line: str
    challenger_version: int | None = None
    champion_version: int | None = None
    comparison: tuple[MetricComparison, ...] = ()
    decided_by: str = ""  # the rule that decided the verdict
    notes: tuple[str, ...] = ()  # what else a reviewer should know (library changed, champion re-scored, ...)
    bootstrap: dict[str, Any] = field(default_factory=dict)  # how the intervals were computed (rows, resamples, seed)

    headline_keys: ClassVar[tuple[str, ...]] = ("verdict", "challenger_version", "champion_version")

    def to_scraps(self) -> dict[str, Any]:
        rows = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in row.__dict__.items()}
                for row in self.comparison]
        return {"verdict": self.verdict, "verdict_line": self.verdict_line,
                "challenger_version": self.challenger_version, "champion_version": self.champion_version,
                "comparison": rows, "decided_by": self.decided_by, "review_notes": list(self.notes),
                "bootstrap": dict(self.bootstrap)}

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]) -> ReviewRecord:
        rows = tuple(MetricComparison(**{**row, "ci95": tuple(row["ci95"]) if row.get("ci95") else None})
                     for row in scraps.get("comparison") or ())
        return cls(verdict=scraps["verdict"], verdict_line=scraps.get("verdict_line", ""),
                   challenger_version=scraps.get("challenger_version"),
                   champion_version=scraps.get("champion_version"), comparison=rows,
                   decided_by=scraps.get("decided_by", ""), notes=tuple(scraps.get("review_notes") or ()),
                   bootstrap=dict(scraps.get("bootstrap") or {}))


@dataclass(frozen=True)
class TuneRecord(Record):
    """tune: the search (trials, time), the best configuration, and best against current on the validation split.

    Its scrap names stay clear of the test metrics' plain names (``rmse``, ``auc``): metrics.json merges every
    notebook's scraps, and a validation score must never read as a test one.
    """

    tuning_job: str
    objective: str  # "validation:rmse"
    maximize: bool
    best_value: float | None
    best_trial: int | None
    current_value: float | None  # the objective of model.yml's configuration, on the validation split
    tuned_value: float | None  # of the configuration --apply writes
    tuned_hyperparameters: dict[str, Any]  # what --apply changes in training.hyperparameters (None: remove the key)
    trials: int
    trials_complete: int = 0
    trials_pruned: int = 0
    trials_failed: int = 0
    resumed_trials: int = 0
    seconds: float = 0.0
    importances: dict[str, float] = field(default_factory=dict)
    validation_current: dict[str, float] = field(default_factory=dict)
    validation_tuned: dict[str, float] = field(default_factory=dict)
    storage: str = ""
    parents: tuple[str, ...] = ()

    headline_keys: ClassVar[tuple[str, ...]] = ("best_value", "trials", "seconds")


@dataclass(frozen=True)
class DeployRecord(Record):
    """deploy: what one environment's endpoint serves now, whether its answers match the artifact, its latency."""

    version: int
    endpoint_url: str | None
    deployed: bool  # False: the version was already live
    predictions_identical: bool
    previous_version: int | None = None
    env_name: str = "staging"  # staging | production
    endpoint: str | None = None  # the endpoint's name (<model>-staging, <model>)
    package_id: str | None = None
    p50_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    rows_per_second: float | None = None
    batch_rows: int | None = None
    endpoint_metrics: dict[str, float] = field(default_factory=dict)  # test metrics from the endpoint's answers
    check_batches: int | None = None  # requests the test rows went in for the answer check

    headline_keys: ClassVar[tuple[str, ...]] = ("version", "p50_latency_ms", "rows_per_second")

    @classmethod
    def of(cls, package: PackageVersion, deployment: Deployment, check: EndpointCheck, latency: Latency,
           env_name: str = "staging") -> DeployRecord:
        """What the deploy notebook hands on: where, the version served, the answers check and the latency."""
        return cls(version=package.version, endpoint_url=deployment.url, deployed=deployment.changed,
                   predictions_identical=check.identical, previous_version=deployment.previous_version,
                   env_name=env_name, endpoint=deployment.endpoint, package_id=package.package_id,
                   endpoint_metrics=dict(check.metrics), check_batches=check.batches, **latency.scraps())

    def to_scraps(self) -> dict[str, Any]:
        values = {k: v for k, v in super().to_scraps().items() if k != "endpoint_metrics"}
        values.update({f"endpoint_{k}": v for k, v in self.endpoint_metrics.items()})
        return values

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]) -> DeployRecord:
        record = super().from_scraps(scraps)
        return replace(record, endpoint_metrics=_metrics(scraps, "endpoint_"))


@dataclass(frozen=True)
class MonitorRecord(Record):
    """monitor: an endpoint's traffic in a window against its version's baseline, and what it violated."""

    endpoint: str
    version: int | None
    since: str
    until: str
    records: int = 0  # capture records read
    rows: int = 0  # request rows checked
    skipped: int = 0  # malformed or truncated records and unreadable files, left out
    violations: int = 0
    violation_checks: dict[str, int] = field(default_factory=dict)  # constraint_check_type -> count
    drifted_features: tuple[str, ...] = ()
    prediction_distance: float | None = None
    labelled_rows: int = 0
    live_metrics: dict[str, float] = field(default_factory=dict)  # with ground truth: metrics on live rows
    violations_uri: str | None = None  # constraint_violations.json in the store
    statistics_uri: str | None = None

    headline_keys: ClassVar[tuple[str, ...]] = ("violations", "rows", "drifted_features")

    def to_scraps(self) -> dict[str, Any]:
        values = {k: v for k, v in super().to_scraps().items() if k != "live_metrics"}
        values["drifted_features"] = list(self.drifted_features)
        values.update({f"live_{k}": v for k, v in self.live_metrics.items()})
        return values

    @classmethod
    def from_scraps(cls, scraps: dict[str, Any]) -> MonitorRecord:
        record = super().from_scraps(scraps)
        return replace(record, live_metrics=_metrics(scraps, "live_"),
                       violation_checks=dict(scraps.get("violation_checks") or {}))


@dataclass(frozen=True)
class GateRecord(Record):
    """gate: the promotion gate's figures for what staging serves, against production's SLO, and the verdict.

    ``gate_failures`` says, one sentence each, what failed; empty when the gate passed.
    """

    gate_passed: bool
    staging_version: int
    staging_package_id: str
    rows_replayed: int  # held-out test rows sent (in batches within the endpoint's payload limit)
    rows_identical: int  # answered exactly as the artifact predicts offline
    errors: int  # row answers that failed (after the client's retries): failed batches' rows, single requests
    gate_error_rate: float
    gate_p50_ms: float | None
    gate_p99_ms: float | None
    max_abs_difference: float | None = None
    slo_p50_ms: float | None = None
    slo_p99_ms: float | None = None
    slo_error_rate: float = 0.0
    gate_failures: tuple[str, ...] = ()
    production_version: int | None = None  # what production served when the gate ran
    batches: int | None = None  # requests the held-out rows went in
    latency_requests: int | None = None  # single-row requests p50 and p99 were measured on
    #: The staging server the gate measured (``EndpointStatus.server_id``): its figures hold for that server only,
    #: so a run of the gate is reused only while the same one serves.
    staging_server: str | None = None

    headline_keys: ClassVar[tuple[str, ...]] = ("gate_passed", "gate_p99_ms", "gate_error_rate")

    def to_scraps(self) -> dict[str, Any]:
        values = super().to_scraps()
        values["gate_failures"] = list(self.gate_failures)
        return values



__all__ = ["DeployRecord", "Gate", "GateRecord", "GatherRecord", "MetricComparison", "MonitorRecord", "Record",
           "ReviewRecord", "TrainRecord", "TuneRecord"]
