"""model.yml ``problem_type``: the kinds of model, and the test metrics each one reports."""

from __future__ import annotations

from modelops.metrics import PROBLEM_METRICS

#: The problem types a model can have: those the metric registry names (regression, binary, multiclass).
PROBLEM_TYPES = tuple(PROBLEM_METRICS)

#: Test-split metrics each problem type reports; quality gates and review rules may name only these (the
#: metrics themselves, with their directions, are modelops.metrics.METRICS).
METRICS_BY_PROBLEM_TYPE = {problem: PROBLEM_METRICS[problem] for problem in PROBLEM_TYPES}

SCHEMA = {"enum": list(PROBLEM_TYPES)}
