"""model.yml ``evaluation``: the threshold turning a binary model's probabilities into labels for the metrics."""

from __future__ import annotations

DEFAULT_DECISION_THRESHOLD = 0.5

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"threshold": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
}


def parse(raw: dict) -> float:
    """The decision threshold (``ModelConfig.decision_threshold``)."""
    return (raw.get("evaluation") or {}).get("threshold", DEFAULT_DECISION_THRESHOLD)
