"""model.yml ``review``: the noise-aware verdict's bootstrap and the minimum changes it decides on."""

from __future__ import annotations

from dataclasses import dataclass

from modelops.config.problem import METRICS_BY_PROBLEM_TYPE
from modelops.config.schema import given
from modelops.metrics import PRIMARY_METRIC

#: MLflow's MetricThreshold comparison fields (mlflow/models/evaluation/validation.py), same names and meaning.
_CHANGE_RULE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"min_absolute_change": {"type": "number", "exclusiveMinimum": 0},
                   "min_relative_change": {"type": "number", "minimum": 0, "maximum": 1}},
}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "resamples": {"type": "integer", "minimum": 1000, "maximum": 100000},
        "seed": {"type": "integer", "minimum": 0},
        **_CHANGE_RULE["properties"],
        "metrics": {"type": "object", "minProperties": 1,
                    "additionalProperties": {"anyOf": [_CHANGE_RULE, {"type": "null"}]}},
    },
}


@dataclass(frozen=True)
class ChangeRule:
    """How much better than the champion a challenger must be on one metric (MLflow's MetricThreshold fields).

    ``min_absolute_change``: the improvement (positive = better) must be at least this. ``min_relative_change``:
    at least this share of the champion's value (a champion at 0 needs any improvement above 1e-10, as in MLflow).
    """

    metric: str
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def describe(self) -> str:
        parts = [f"min_absolute_change {self.min_absolute_change:g}" if self.min_absolute_change else "",
                 f"min_relative_change {self.min_relative_change:g}" if self.min_relative_change else ""]
        return ", ".join(p for p in parts if p) or "any improvement"


@dataclass(frozen=True)
class ReviewConfig:
    """The review's noise-aware verdict (``review:`` in model.yml): the bootstrap and the metrics it decides on."""

    rules: tuple[ChangeRule, ...] = ()  # empty: the primary metric, with the global minimum changes
    resamples: int = 2000
    seed: int = 0
    min_absolute_change: float | None = None
    min_relative_change: float | None = None

    def decided_on(self, problem_type: str) -> tuple[ChangeRule, ...]:
        """The metrics a challenger must beat the champion on, each with its minimum change."""
        if self.rules:
            return self.rules
        return (ChangeRule(PRIMARY_METRIC[problem_type], self.min_absolute_change, self.min_relative_change),)


def parse(raw: dict) -> ReviewConfig:
    """The review settings; a metric's own rule takes the global minimum changes for what it leaves out."""
    review = raw.get("review") or {}
    absolute, relative = review.get("min_absolute_change"), review.get("min_relative_change")
    rules = tuple(ChangeRule(name, (spec or {}).get("min_absolute_change", absolute),
                             (spec or {}).get("min_relative_change", relative))
                  for name, spec in (review.get("metrics") or {}).items())
    return ReviewConfig(**{**given(review, ReviewConfig), "rules": rules,
                           "seed": review.get("seed", raw["split"]["seed"])})


def problems(raw: dict) -> list[str]:
    """Rules on metrics this problem type does not report."""
    review = raw.get("review") or {}
    allowed = METRICS_BY_PROBLEM_TYPE[raw["problem_type"]]
    return [f"key 'review.metrics.{name}' is not a metric of a {raw['problem_type']} model. Fix: use one of "
            f"{list(allowed)}" for name in review.get("metrics") or {} if name not in allowed]
