"""model.yml ``split``: the train/validation/test ratios and the shuffle seed."""

from __future__ import annotations

from dataclasses import dataclass

_RATIO = {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}

SCHEMA = {
    "type": "object",
    "required": ["train", "validation", "test", "seed"],
    "additionalProperties": False,
    "properties": {"train": _RATIO, "validation": _RATIO, "test": _RATIO, "seed": {"type": "integer"}},
}


@dataclass(frozen=True)
class SplitConfig:
    """Train/validation/test ratios and the shuffle seed."""

    train: float
    validation: float
    test: float
    seed: int


def parse(raw: dict) -> SplitConfig:
    return SplitConfig(**raw["split"])


def problems(raw: dict) -> list[str]:
    split = raw["split"]
    total = split["train"] + split["validation"] + split["test"]
    if abs(total - 1.0) > 1e-6:
        return [f"key 'split' ratios add up to {total:g}, not 1. Fix: make train + validation + test = 1"]
    return []
