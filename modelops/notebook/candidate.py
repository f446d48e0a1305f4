"""A trained model on its way to the registry: its dataset, training, evaluation and gates, held in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelops.config import ModelConfig
from modelops.entities import PackageVersion, TrainingResult
from modelops.notebook.glue import glue_record
from modelops.records import TrainRecord
from modelops.review.evaluation import Evaluation, QualityReport, check_quality, evaluate_model
from modelops.review.packages import record_evaluation, register_model

if TYPE_CHECKING:
    from modelops.backends.base import Backend
    from modelops.data.datasets import Dataset
    from modelops.monitoring.baseline import Baseline


@dataclass
class Candidate:
    """A trained model, evaluated on the test split and checked against its quality gates: train_register's state.

    ``record_evaluation`` stores its evaluation report (what the review reads if a gate fails); ``register`` makes
    it a version and glues its ``TrainRecord``, once, whatever happens.
    """

    ops: Backend
    config: ModelConfig
    dataset: Dataset
    training: TrainingResult
    evaluation: Evaluation
    gates: QualityReport
    record: TrainRecord | None = field(default=None, init=False)  # once the evaluation is recorded
    package: PackageVersion | None = field(default=None, init=False, repr=False)  # once registered

    @classmethod
    def evaluate(cls, ops: Backend, config: ModelConfig, dataset: Dataset, training: TrainingResult) -> Candidate:
        """A training job's artifact evaluated on the dataset's test split, and the gates checked on its metrics."""
        evaluation = evaluate_model(ops, config, dataset, training)
        return cls(ops, config, dataset, training, evaluation, check_quality(config, evaluation.metrics))

    def record_evaluation(self) -> TrainRecord:
        """Store the evaluation report, gates passed or not, and return the record before registration.

        Raises:
            StoreError: the report could not be written.
        """
        self.record = record_evaluation(self.ops, self.config, self.dataset, self.training, self.evaluation,
                                        self.gates)
        return self.record

    def register(self, *, notebook_artifact: str | None = None, baseline: Baseline | None = None) -> PackageVersion:
        """Register this model as a new PendingManualApproval version, then glue its record (registered or not).

        The evaluation is recorded first if it was not. The record is glued even when registration fails, so
        that what a failed gate leaves is what the review of the run reads.

        Args:
            notebook_artifact: where the executed notebook is kept (part of the version's lineage).
            baseline: the monitoring baseline ``modelops.write_baseline`` wrote; None: the version cannot be
                monitored.

        Raises:
            QualityGateFailed: a gate did not pass (nothing is registered).
        """
        record = self.record or self.record_evaluation()
        self.package = None
        try:
            self.package = register_model(self.ops, self.config, self.dataset, self.training, self.evaluation,
                                          self.gates, notebook_artifact=notebook_artifact, record=record,
                                          baseline=baseline)
        finally:
            glue_record(record if self.package is None else record.with_registration(self.package))
        return self.package
