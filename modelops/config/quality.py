"""model.yml ``quality``: the gates a trained model's test metrics must pass before it is registered for review."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modelops.config.problem import METRICS_BY_PROBLEM_TYPE
from modelops.config.schema import NUMBER

_THRESHOLD = {
    "type": "object",
    "properties": {"min": NUMBER, "max": NUMBER},
    "additionalProperties": False,
    "minProperties": 1,
}

SCHEMA = {"type": "object", "additionalProperties": _THRESHOLD}


@dataclass(frozen=True)
class Threshold:
    """A quality gate on one test metric: the value must lie within [min, max]."""

    metric: str
    min: float | None = None
    max: float | None = None

    def passes(self, value: float) -> bool:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


def parse(raw: dict) -> tuple[Threshold, ...]:
    return tuple(Threshold(metric, **bounds) for metric, bounds in raw["quality"].items())


def problems(raw: dict) -> list[str]:
    """No gate at all, a gate on a metric this problem type does not report, bounds that always fail."""
    problem_type, quality = raw["problem_type"], raw["quality"]
    allowed = list(METRICS_BY_PROBLEM_TYPE[problem_type])
    problems = []
    if not quality:
        problems.append(f"key 'quality' has no thresholds, so every model would pass review. "
                        f"Fix: gate at least one of {allowed}")
    for metric, bounds in quality.items():
        if metric not in allowed:
            problems.append(f"key 'quality.{metric}' is not a metric of a {problem_type} model. "
                            f"Fix: use one of {allowed}")
        elif "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            problems.append(f"key 'quality.{metric}' has min {bounds['min']} above max {bounds['max']}, so it always "
                            f"fails. Fix: swap or correct them")
    return problems
