"""model.yml ``data``: where the raw data comes from and how its columns become features."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelops.config.schema import DEFAULT_INSTANCE_TYPE, INSTANCE_COUNT, INSTANCE_TYPE, given

#: The model folder's optional feature code: ``prepare(frame) -> frame`` on the raw table (modelops.data.features).
FEATURES_FILE = "features.py"
#: The fewest classes of a multiclass model (two classes are a binary model: positive_label, AUC, threshold).
MIN_CLASSES = 3

_NAMES = {"type": "array", "items": {"type": "string"}}
_LABEL = {"type": ["string", "number", "boolean"]}
#: ``data.processing``: run the gather on the sagemaker backend as a SageMaker Processing job (docs/scaling.md).
PROCESSING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "instance_type": INSTANCE_TYPE,
        "instance_count": INSTANCE_COUNT,
        "volume_size_gb": {"type": "integer", "minimum": 1, "maximum": 16384},
        "max_runtime_seconds": {"type": "integer", "minimum": 60, "maximum": 432000},
        "image_uri": {"type": "string", "minLength": 1},
    },
}

SCHEMA = {
    "type": "object",
    "required": ["source", "target"],
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "minLength": 1},
        "sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"},
        "header": {"type": "boolean"},
        "columns": {**_NAMES, "minItems": 2},
        "target": {"type": "string"},
        "positive_label": _LABEL,
        "classes": {"type": "array", "items": _LABEL},
        "derived": _NAMES,
        "drop": _NAMES,
        "categorical": _NAMES,
        "processing": PROCESSING_SCHEMA,
    },
}


@dataclass(frozen=True)
class ProcessingConfig:
    """Where the gather runs on the sagemaker backend: a Processing job of this compute (docs/scaling.md)."""

    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    image_uri: str | None = None  # None: $MODELOPS_PROCESSING_IMAGE (the image built from infra/processing/)


@dataclass(frozen=True)
class DataConfig:
    """Where the raw data comes from and how its columns become features."""

    source: str
    target: str
    sha256: str | None = None
    header: bool = True
    columns: tuple[str, ...] = ()
    positive_label: Any = None
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    classes: tuple[Any, ...] = ()  # multiclass: the target's values, label-encoded 0, 1, ... in this order
    derived: tuple[str, ...] = ()  # columns the model folder's features.py adds to the raw table
    #: None: the gather runs where the notebook runs; else a SageMaker Processing job on the sagemaker backend.
    #: Where the data is gathered is not what is gathered: it stays out of the dataset's id.
    processing: ProcessingConfig | None = None


def parse(raw: dict) -> DataConfig:
    data = dict(raw["data"])
    processing = data.pop("processing", None)
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    if processing is not None:
        values["processing"] = ProcessingConfig(**given(processing, ProcessingConfig))
    return DataConfig(**values)


def canonical_label(value: Any) -> str:
    """How a class or category value is compared: as trimmed text, with an integral number in its integer form.

    So the class ``2`` in model.yml, the text ``2`` in a CSV file and ``2.0`` from a float column are one value;
    ``02`` stays itself (a code with a leading zero is not the number 2).
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.split(".", 1)[0] if _INTEGRAL.match(text) else text


_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")


def problems(raw: dict) -> list[str]:
    """Columns that are missing, named twice or unknown; the target dropped or derived; the classes and label."""
    problems = []
    data = raw["data"]
    columns = data.get("columns") or []
    if not data.get("header", DataConfig.header) and not columns:
        problems.append("key 'data.columns' is missing: a file without a header needs its column names. "
                        "Fix: list the columns in file order")
    derived = data.get("derived", [])
    if columns:
        if len(set(columns)) != len(columns):
            problems.append("key 'data.columns' names a column twice. Fix: make every column name unique")
        if data["target"] not in columns:
            problems.append(f"key 'data.target' is {data['target']!r}, which is not in data.columns {columns}. "
                            f"Fix: use one of the listed columns")
        for key in ("drop", "categorical"):
            for col in data.get(key, []):
                if col not in columns and col not in derived:
                    problems.append(f"key 'data.{key}' names {col!r}, which is not in data.columns or data.derived. "
                                    f"Fix: remove it or correct the spelling")
        for col in derived:
            if col in columns:
                problems.append(f"key 'data.derived' names {col!r}, which is already in data.columns. Fix: list "
                                f"only the columns features.py adds (a column it changes is not derived)")
    if data["target"] in data.get("drop", []):
        problems.append(f"key 'data.drop' drops the target {data['target']!r}. Fix: remove it from data.drop")
    if len(set(derived)) != len(derived):
        problems.append("key 'data.derived' names a column twice. Fix: list each derived column once")
    if data["target"] in derived:
        problems.append(f"key 'data.derived' names the target {data['target']!r}: features.py must not make the "
                        f"label (at inference there is none). Fix: remove it from data.derived")
    problems += _class_problems(raw["problem_type"], data, raw["training"]["hyperparameters"])
    if (data.get("processing") or {}).get("instance_count", 1) > 1:
        problems.append("key 'data.processing.instance_count' is above 1: a gather on several instances would "
                        "prepare each shard with its own one-hot categories and split, so the parts would not "
                        "make one dataset. Fix: set it to 1 and pick a larger instance_type (docs/scaling.md)")
    if raw["problem_type"] == "binary" and "positive_label" not in data:
        problems.append("key 'data.positive_label' is missing: a binary model needs the target value that "
                        "counts as 1. Fix: add e.g. positive_label: 'True.'")
    return problems


def _class_problems(problem_type: str, data: dict, hyperparameters: dict) -> list[str]:
    problems = []
    classes = data.get("classes")
    if problem_type != "multiclass":
        if classes is not None:
            problems.append(f"key 'data.classes' is for multiclass models, not {problem_type}. Fix: remove it, or "
                            f"set problem_type: multiclass")
        if "num_class" in hyperparameters:
            problems.append("key 'training.hyperparameters.num_class' is for multiclass models. Fix: remove it")
        return problems
    if not classes:
        return ["key 'data.classes' is missing: a multiclass model lists the target's values, which are "
                "label-encoded 0, 1, ... in that order. Fix: add e.g. classes: [setosa, versicolor, virginica]"]
    labels = [canonical_label(c) for c in classes]
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})
        problems.append(f"key 'data.classes' names {twice} twice (values are compared as text, 2 and 2.0 alike). "
                        f"Fix: list each class once")
    if len(classes) < MIN_CLASSES:
        problems.append(f"key 'data.classes' lists {len(classes)} classes; a multiclass model needs at least "
                        f"{MIN_CLASSES}. Fix: use problem_type: binary with positive_label for two classes")
    given = hyperparameters.get("num_class")
    if given is not None and given != len(classes):
        problems.append(f"key 'training.hyperparameters.num_class' is {given!r} but data.classes lists "
                        f"{len(classes)}. Fix: remove num_class; training sets it from data.classes")
    return problems
