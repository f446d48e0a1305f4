"""Review: the challenger (the version just trained) against the champion (the newest approved version).

Both come from what the backend recorded, never from an executed notebook: a registered challenger and the
champion from the registry, a challenger that failed a quality gate (and so was not registered) from the
evaluation report its training left in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from modelops.config import ModelConfig
from modelops.errors import RegistryError
from modelops.metrics import PRIMARY_METRIC, TOLERANCE
from modelops.metrics import metric as metric_named
from modelops.records import Gate, MetricComparison, ReviewRecord, TrainRecord


@dataclass(frozen=True)
class Review:
    """The comparison and verdict, with the two records it was made from."""

    record: ReviewRecord
    challenger: TrainRecord
    champion: TrainRecord | None

    @property
    def verdict(self) -> str:
        return self.record.verdict

    @property
    def line(self) -> str:
        return self.record.verdict_line

    def table(self) -> pd.DataFrame:
        """Metric by metric: challenger, champion, the improvement (positive: better) and its reading."""
        rows = [{"metric": r.metric, "challenger": r.challenger, "champion": r.champion,
                 "improvement": r.improvement, "change": r.change, "gated": r.gated} for r in self.record.comparison]
        return pd.DataFrame(rows).set_index("metric") if rows else pd.DataFrame()

    def _repr_markdown_(self) -> str:
        notes = "".join(f"\n- {note}" for note in self.record.notes)
        return f"### Verdict: {self.line}\n\nDecided by: {self.record.decided_by}{notes}"


def watched_metrics(config: ModelConfig) -> list[str]:
    """The gated metrics and the primary one: those a challenger may not be worse on."""
    watched = [t.metric for t in config.quality]
    primary = PRIMARY_METRIC[config.problem_type]
    return watched if primary in watched else [*watched, primary]


def compare(config: ModelConfig, challenger: TrainRecord, champion: TrainRecord | None) -> ReviewRecord:
    """Compare the challenger's test metrics with the champion's and state the verdict.

    REJECT when the challenger failed a quality gate; HOLD when it is worse than the champion beyond the
    tolerance on a gated or the primary metric; APPROVE otherwise.
    """
    watched = watched_metrics(config)
    rows, worse = [], []
    for name in config.metrics:
        new = challenger.metrics.get(name)
        if new is None:
            continue
        old = champion.metrics.get(name) if champion else None
        measure = metric_named(name)
        row = MetricComparison(name, float(new), None if old is None else float(old), measure.improvement(new, old),
                               measure.change(new, old, TOLERANCE), name in watched)
        if row.change == "worse" and row.gated:
            worse.append(f"{name} {new:.4g} vs {old:.4g}")
        rows.append(row)
    name = f"v{challenger.version}" if challenger.version else "the challenger"
    if not challenger.quality_passed:
        failed = "; ".join(_gate_text(g) for g in challenger.failed_gates)
        verdict, rule = "REJECT", "a quality gate failed"
        reason = f"{name} failed its quality gate{'s' if len(challenger.failed_gates) > 1 else ''} ({failed}) " \
                 f"and was not registered"
    elif champion is None:
        verdict, rule = "APPROVE", "gates passed; no approved champion"
        reason = f"{name} passed every quality gate; there is no approved version to beat yet"
    elif worse:
        verdict, rule = "HOLD", f"worse than the champion beyond {TOLERANCE:.0%} on a watched metric"
        reason = (f"{name} is worse than champion v{champion.version} on {', '.join(worse)}; approve only if that "
                  f"is intended")
    else:
        verdict = "APPROVE"
        rule = f"gates passed; within {TOLERANCE:.0%} of the champion or better on every watched metric"
        reason = (f"{name} matches or beats champion v{champion.version} on every watched metric "
                  f"({', '.join(watched)})")
    return ReviewRecord(verdict, f"{verdict}: {reason}", challenger.version, champion.version if champion else None,
                        tuple(rows), rule, tuple(_notes(challenger, champion)))


def review_model(backend, config: ModelConfig, *, version: int | None = None,
                 evaluation: str | None = None) -> Review:
    """Review a challenger against the registry's champion.

    Args:
        backend: the backend (its registry and store are read).
        config: the model.
        version: the registered challenger; None with ``evaluation`` None means the newest registered version.
        evaluation: the evaluation report of a challenger that was not registered (a failed quality gate).

    Raises:
        RegistryError: nothing to review (no such version, no version at all).
        StoreError: the evaluation report is missing.
    """
    if evaluation and version is None:
        challenger = _from_report(backend, evaluation)
    else:
        package = backend.registry.get(config.name, version) if version else backend.registry.latest(config.name)
        if package is None:
            raise RegistryError(f"{config.name} has no registered version to review. Fix: train it first "
                                f"(`python -m ci run {config.folder.name if config.folder else 'MODEL_DIR'} "
                                f"--stage train`).")
        challenger = package_record(backend, config, package)
    from modelops.packages import champion as find_champion

    best = find_champion(backend.registry, config.name, excluding=challenger.version)
    champion = package_record(backend, config, best) if best else None
    return Review(compare(config, challenger, champion), challenger, champion)


def package_record(backend, config: ModelConfig, package) -> TrainRecord:
    """A registered version as a train record: metrics and lineage as the registry holds them."""
    from modelops.evaluation import check_quality
    from modelops.metrics import is_metric
    from modelops.packages import evaluation_uri

    metrics = {k: v for k, v in package.metrics.items() if is_metric(k)}
    baseline = {k.removeprefix("baseline_"): v for k, v in package.metrics.items()
                if k.startswith("baseline_") and is_metric(k.removeprefix("baseline_"))}
    gates = check_quality(config, metrics)
    return TrainRecord(
        problem_type=config.problem_type, metrics=metrics, baseline=baseline,
        gates=tuple(Gate(r.metric, r.value, r.threshold, r.passed) for r in gates.results),
        job_name=package.training_job, artifact_uri=package.artifact_uri, artifact_sha256=package.artifact_sha256,
        dataset_id=package.dataset_id, evaluation_uri=evaluation_uri(backend.store, config.name, package.training_job),
        version=package.version, status=package.status, package_id=package.package_id,
        tree_hash=package.lineage.tree_hash, library_hash=package.lineage.library_hash,
        approved_by=package.status_by if package.status == "Approved" else None)


def _from_report(backend, uri: str) -> TrainRecord:
    from modelops.packages import read_evaluation

    report = read_evaluation(backend.store, uri)
    return TrainRecord.from_scraps(report["record"])


def _notes(challenger: TrainRecord, champion: TrainRecord | None) -> list[str]:
    notes = []
    if champion is None:
        return notes
    if challenger.library_hash and champion.library_hash and challenger.library_hash != champion.library_hash:
        notes.append(f"the modelops library changed since champion v{champion.version} (source hash "
                     f"{champion.library_hash[:12]} -> {challenger.library_hash[:12]}): preparation, training or "
                     f"evaluation code may differ, not only the model folder")
    elif champion.library_hash is None:
        notes.append(f"champion v{champion.version} did not record its modelops library version")
    if challenger.dataset_id != champion.dataset_id:
        notes.append(f"the dataset changed since champion v{champion.version} ({champion.dataset_id} -> "
                     f"{challenger.dataset_id}): its metrics were measured on other test rows")
    return notes


def _gate_text(gate: Gate) -> str:
    value = "missing" if gate.value is None else f"{gate.value:.4g}"
    return f"{gate.metric} = {value}, required {gate.threshold}"
