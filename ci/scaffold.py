"""A new model folder in one command: the template notebooks, a features.py stub and a model.yml read off the data."""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import yaml

from ci.models import FOLDER_NAME, discover_models
from ci.notebooks import templates_dir, write_new
from ci.stages import model_notebooks
from modelops.config import (
    CONFIG_FILE,
    DEFAULT_INSTANCE_COUNT,
    DEFAULT_INSTANCE_TYPE,
    FEATURES_FILE,
    MODEL_NAME_PATTERN,
    PROBLEM_TYPES,
    STAGING_SUFFIX,
    load_model_config,
)
from modelops.data.features import STUB as FEATURES_STUB
from modelops.errors import ConfigError, DataError

#: XGBoost starting points per problem type (the SageMaker built-in algorithm's hyperparameter names).
DEFAULT_HYPERPARAMETERS = {
    "regression": {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6,
                   "subsample": 0.8, "num_round": 100, "early_stopping_rounds": 10, "eval_metric": "rmse"},
    "binary": {"objective": "binary:logistic", "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6,
               "subsample": 0.8, "num_round": 100, "early_stopping_rounds": 10, "eval_metric": "auc"},
    # num_class is not written: training sets it from data.classes (one home for the class list).
    "multiclass": {"objective": "multi:softprob", "max_depth": 5, "eta": 0.2, "gamma": 4, "min_child_weight": 6,
                   "subsample": 0.8, "num_round": 100, "early_stopping_rounds": 10, "eval_metric": "mlogloss"},
}

#: A search space that suits most tabular XGBoost models (``python -m ci tune``); narrow it once you know the model.
DEFAULT_SEARCH = {"max_depth": {"int": [2, 10]}, "eta": {"float": [0.01, 0.3], "log": True},
                  "subsample": {"float": [0.5, 1.0]}, "colsample_bytree": {"float": [0.4, 1.0]},
                  "min_child_weight": {"float": [1, 50], "log": True}, "gamma": {"float": [0, 5]},
                  "lambda": {"float": [0.01, 100], "log": True}}
DEFAULT_OBJECTIVE = {"regression": "validation:rmse", "binary": "validation:auc", "multiclass": "validation:mlogloss"}

#: Gates a model must pass to be registered: better than the null model (training mean / guessing) by a margin.
#: Deliberately loose for a model nobody has looked at yet; the comment in model.yml says to tighten them.
#: A multiclass model's gate depends on the data (see multiclass_quality).
DEFAULT_QUALITY = {"regression": {"r2": {"min": 0.1}}, "binary": {"auc": {"min": 0.6}}}

#: A target with more distinct values than this is not offered as classes (it looks like a quantity).
MAX_CLASSES = 50

#: Whole-number columns with at most this many distinct values are pointed out as possible codes (categories).
CODE_MAX_VALUES = 20

#: Target values read as the positive class of a binary model, compared lower-cased without a trailing dot.
TRUTHY = {"1", "1.0", "true", "yes", "y", "t", "positive", "pos"}

#: A text column with more distinct values than this share of its rows is an identifier, not a feature.
IDENTIFIER_SHARE = 0.5
CONTAINER_VERSION = "3.2-0"

#: How model.yml's first line names each problem type.
KINDS = {"regression": "regression", "binary": "binary classification", "multiclass": "multiclass classification"}


@dataclass(frozen=True)
class Profile:
    """What the scaffold read off the data: its columns and how each one is used."""

    header: bool
    columns: list[str]
    categorical: list[str]
    drop: list[str]
    positive_label: object | None
    rows: int
    classes: list | None = None  # multiclass: the target's values, sorted
    majority_share: float | None = None  # classification: the most frequent class's share of the rows
    codes: tuple[str, ...] = ()  # numeric columns of few whole numbers: codes to consider as categories
    renamed: tuple[tuple[str, str], ...] = ()  # header names as written -> as the pipeline reads them


def model_name(folder: str) -> str:
    """The SageMaker-safe model name of a folder: underscores become hyphens."""
    return folder.replace("_", "-")


def check_new_folder(root: Path, folder: str) -> None:
    """Refuse a folder name that is unusable, or clashes with anything already at the project root.

    Raises:
        ConfigError: naming the problem and a name that would do.
    """
    suggestion = "-".join(part for part in "".join(c if c.isalnum() else "-" for c in folder).split("-") if part)
    if not FOLDER_NAME.match(folder) or not MODEL_NAME_PATTERN.match(model_name(folder)):
        raise ConfigError(
            f"{folder!r} cannot name a model: a model folder is a top-level folder named with letters, digits, '_' "
            f"and '-' (starting with a letter or digit), and its name with '_' as '-' must be a valid SageMaker "
            f"name (at most 40 characters, no leading or trailing '-'). Fix: try {suggestion[:40] or 'my_model'!r}.")
    if model_name(folder).endswith(STAGING_SUFFIX):
        raise ConfigError(f"{folder!r} cannot name a model: its production endpoint {model_name(folder)!r} would be "
                          f"the staging endpoint of a model named {model_name(folder)[:-len(STAGING_SUFFIX)]!r}. Fix: "
                          f"choose a name that does not end with {STAGING_SUFFIX.replace('-', '_')!r}.")
    from ci.orb.mapping import RESERVED_NAMES

    if folder.lower() in RESERVED_NAMES:
        raise ConfigError(f"{folder!r} cannot name a model: in the CircleCI config, {RESERVED_NAMES[folder.lower()]}. "
                          f"Fix: choose a name that says what the model predicts.")
    models = discover_models(root)
    if (root / folder).exists() or any(m.name.lower() == folder.lower() for m in models):
        raise ConfigError(f"{folder}/ already exists at {root}. Fix: choose another name, or edit {folder}/ directly.")
    for existing in models:
        try:
            taken = existing.config().name
        except ConfigError:
            taken = model_name(existing.name)
        if taken.lower() == model_name(folder).lower():
            raise ConfigError(f"{folder!r} would register as {model_name(folder)!r}, which {existing.name}/ already "
                              f"uses in the registry. Fix: choose another name.")


def profile_data(path: Path, *, target: str, problem: str, header: bool | None = None,
                 columns: list[str] | None = None, positive_label: str | None = None) -> Profile:
    """Read a CSV file and decide its header, columns, categorical and identifier columns and its classes.

    The file is read as the pipeline reads it (modelops.data.prepare.read_table: header names trimmed and made
    unique), and a column counts as numeric when every cell is a number or a missing-value marker.

    Raises:
        DataError: the file is not a CSV with the target column, or the target does not fit the problem type
            (the message names the problem type that fits).
    """
    from modelops.data.encoding import all_numbers
    from modelops.data.prepare import clean_names, read_table

    sample = path.read_bytes()[:65536].decode("utf-8", errors="replace")
    if not sample.strip():
        raise DataError(f"{path} is empty. Fix: point --source at a CSV file with data rows.")
    if header is None:
        header = columns is None and _has_header(sample)
    if not header and not columns:
        raise DataError(f"{path} has no header row, so its columns have no names. Fix: pass --columns with every "
                        f"column's name in order (comma-separated), or --header if the first row names them.")
    frame = read_table(path, header=False)
    if header:
        written = [str(name) for name in frame.iloc[0]]
        names = clean_names(written)
        frame = frame.iloc[1:].reset_index(drop=True)
        renamed = tuple((old, new) for old, new in zip(written, names) if old != new)
    else:
        if frame.shape[1] != len(columns):
            raise DataError(f"{path} has {frame.shape[1]} columns but --columns names {len(columns)}. Fix: name "
                            f"every column, in file order.")
        names, renamed = list(columns), ()
    frame.columns = names
    if target not in names:
        raise DataError(f"target column {target!r} is not in {path}: its columns are {names}. Fix: pass --target "
                        f"with one of them.")
    if len(frame) < 20:
        raise DataError(f"{path} has {len(frame)} rows; train/validation/test splits need at least 20.")
    numbers = {c: all_numbers(frame[c]) for c in names}
    numeric = {c for c, values in numbers.items() if values is not None and values.notna().any()}
    target_values = frame[target][frame[target].str.strip() != ""]
    if target_values.empty:
        raise DataError(f"target {target!r} is empty in every row of {path}. Fix: pass another --target.")
    positive = classes = share = None
    if problem == "regression":
        if target not in numeric:
            distinct = target_values.nunique()
            raise DataError(f"target {target!r} is not numeric (for example {target_values.iloc[0]!r}), so it cannot "
                            f"be a regression target. Fix: pass --problem {_classification(distinct)} for a target "
                            f"of {distinct} classes, or another --target.")
    else:
        labels = _labels(target_values, numeric=target in numeric)
        counts = labels.value_counts()
        share = round(float(counts.iloc[0] / counts.sum()), 4)
        if problem == "binary":
            positive = _positive_label(labels, target, positive_label, numeric=target in numeric)
        else:
            classes = _classes(labels, target, numeric=target in numeric)
    features = [c for c in names if c != target]
    text = [c for c in features if c not in numeric]
    drop = [c for c in text if frame[c].nunique() > IDENTIFIER_SHARE * len(frame)]
    drop += [c for c in features if numbers[c] is not None and numbers[c].isna().all()
             and frame[c].str.strip().eq("").all()]
    categorical = [c for c in text if c not in drop]
    if len(drop) == len(features):
        raise DataError(f"every feature of {path} looks like an identifier or is empty ({drop}); nothing is left to "
                        f"learn from.")
    codes = tuple(c for c in features if c in numeric and _looks_like_code(numbers[c]))
    return Profile(bool(header), names, categorical, drop, positive, len(frame), classes, share, codes, renamed)


def _labels(values, *, numeric: bool):
    """Target values as the pipeline compares them (modelops.config.canonical_label), numbers kept as numbers."""
    import pandas as pd

    from modelops.data.encoding import canonical_labels

    labels = pd.Series(canonical_labels(values), index=values.index, dtype=object)  # once per distinct value
    if not numeric:
        return labels
    numbers = {label: _as_number(label) for label in pd.unique(labels)}
    return labels.map(numbers)


def _number_order(label) -> tuple[float, str]:
    return float(label), str(label)


def _as_number(label: str):
    """The number YAML should hold for a numeric class label, or the label itself when a number would not read
    back as the same text (``01``, ``1e3``): model.yml's classes are compared with the data as text."""
    from modelops.config import canonical_label

    for kind in (int, float):
        try:
            number = kind(label)
        except ValueError:
            continue
        if canonical_label(number) == label:
            return number
    return label


def _classification(distinct: int) -> str:
    return "binary" if distinct == 2 else "multiclass"


def _classes(labels, target: str, *, numeric: bool) -> list:
    classes = sorted(labels.unique().tolist(), key=(_number_order if numeric else str))
    shown = f"{classes[:10]}{'...' if len(classes) > 10 else ''}"
    if len(classes) == 2:
        raise DataError(f"target {target!r} has 2 distinct values ({shown}); a multiclass model needs at least 3. "
                        f"Fix: pass --problem binary.")
    if len(classes) < 2:
        raise DataError(f"target {target!r} has a single value ({shown}); there is nothing to classify. Fix: pass "
                        f"another --target.")
    if len(classes) > MAX_CLASSES:
        fix = "--problem regression" if numeric else "another --target (or group the classes at the source)"
        raise DataError(f"target {target!r} has {len(classes)} distinct values ({shown}); more than {MAX_CLASSES} "
                        f"classes look like a quantity or an identifier. Fix: pass {fix}.")
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _looks_like_code(values) -> bool:
    present = values.dropna()
    distinct = present.nunique()
    return bool(len(present)) and 3 <= distinct <= CODE_MAX_VALUES and bool((present == present.round()).all())


def multiclass_quality(majority_share: float) -> dict:
    """Accuracy at least a tenth of the way from always answering the majority class to perfect."""
    return {"accuracy": {"min": math.floor((majority_share + 0.1 * (1 - majority_share)) * 1000) / 1000}}


def new_model(root: Path, folder: str, *, problem: str, source: str, target: str, header: bool | None = None,
              columns: list[str] | None = None, positive_label: str | None = None,
              description: str | None = None) -> Path:
    """Create ``root/folder`` with the template notebooks, a no-op features.py and a model.yml that validates.

    The source is fetched the way gather_data will fetch it (``$MODELOPS_DATA_DIR`` first), its sha256 pinned,
    and its columns read to fill in the config. Nothing is left behind when anything fails.

    Returns:
        The new model folder.

    Raises:
        ConfigError: bad name or problem type. DataError / DataSourceError: the data does not fit.
    """
    from modelops.data.sources import fetch_source

    root = root.resolve()
    if problem not in PROBLEM_TYPES:
        raise ConfigError(f"problem type {problem!r} is not supported. Fix: use one of {', '.join(PROBLEM_TYPES)}.")
    check_new_folder(root, folder)
    templates = templates_dir(root)
    missing = [n for n in model_notebooks() if not (templates / f"{n}.ipynb").is_file()]
    if missing:
        raise ConfigError(f"{templates} lacks {', '.join(missing)}.ipynb; is {root} this project's root?")
    fetched = fetch_source(source, progress=False)
    profile = profile_data(fetched.path, target=target, problem=problem, header=header, columns=columns,
                           positive_label=positive_label)
    text = render_config(folder, problem=problem, source=_portable_source(source, root / folder),
                         sha256=fetched.sha256, target=target, profile=profile, description=description)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
    try:
        write_new(root, staging)
        (staging / FEATURES_FILE).write_text(FEATURES_STUB)
        (staging / CONFIG_FILE).write_text(text)
        load_model_config(staging)  # the scaffold must hand over a config the pipeline accepts as it stands
        os.rename(staging, root / folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return root / folder


def render_config(folder: str, *, problem: str, source: str, sha256: str, target: str, profile: Profile,
                  description: str | None = None) -> str:
    """model.yml text: the values, with comments saying where each came from and what to revisit."""
    data: dict = {"source": source, "sha256": sha256, "header": profile.header}
    if not profile.header:
        data["columns"] = profile.columns
    data["target"] = target
    if profile.positive_label is not None:
        data["positive_label"] = profile.positive_label
    if profile.classes is not None:
        data["classes"] = profile.classes
    if profile.drop:
        data["drop"] = profile.drop
    if profile.categorical:
        data["categorical"] = profile.categorical
    kind = KINDS[problem]
    notes = []
    if profile.renamed:
        notes.append("Header names as the pipeline reads them (trimmed, repeats numbered): "
                     + ", ".join(f"{old!r} -> {new!r}" for old, new in profile.renamed) + ".")
    if profile.codes:
        notes.append(f"Numeric columns of few whole numbers: {list(profile.codes)}. If one is a code (area, region, "
                     f"product) rather than a quantity, list it under categorical: it is then one-hot encoded.")
    if profile.classes is not None:
        notes.append("classes: the target's values, label-encoded 0, 1, ... in this order (the endpoint answers one "
                     "probability per class, in this order).")
    notes.append(f"Derived columns: compute them in {FEATURES_FILE} and list them under derived: (and under "
                 f"categorical: if they are categories).")
    notes = [_comment(note) for note in notes]
    quality = multiclass_quality(profile.majority_share) if problem == "multiclass" else DEFAULT_QUALITY[problem]
    gate_note = (_comment(f"Test-split gate: accuracy a tenth of the way from always answering the majority class "
                          f"({profile.majority_share:.1%} of rows) to perfect. Tighten it once you know what this "
                          f"model reaches (f1_macro and logloss can be gated too).") if problem == "multiclass" else
                 "# Test-split gates: these only ask for a clear lift over the null model (training mean / guessing).\n"
                 "# Tighten them once you know what this model reaches.")
    sections = [
        f"# {folder}: XGBoost {kind} of {target!r}, scaffolded by `python -m ci new-model`.\n"
        f"# Read off the data ({profile.rows} rows): text columns are one-hot encoded (categorical); text columns "
        f"with a distinct\n# value in more than half the rows are identifiers and dropped. Check both lists.",
        _dump({"name": model_name(folder), "description": description or f"XGBoost {kind} of {target}.",
               "problem_type": problem}),
        *([_comment(f"{source} is a path on this machine: elsewhere a file named {Path(source).name} in "
                    f"$MODELOPS_DATA_DIR is used. A URL (https:// or s3://) works everywhere.")]
          if source.startswith("/") else []),
        *notes,
        _dump({"data": data}),
        _dump({"split": {"train": 0.7, "validation": 0.2, "test": 0.1, "seed": 1729}}),
        "# SageMaker built-in XGBoost; the container version must match the installed xgboost (3.2.x).",
        _dump({"training": {"container_version": CONTAINER_VERSION, "instance_type": DEFAULT_INSTANCE_TYPE,
                            "hyperparameters": DEFAULT_HYPERPARAMETERS[problem]}}),
        "# Staging (endpoint NAME-staging) first; the promotion gate holds it to production's SLO before a second\n"
        "# approval promotes the same package to production (endpoint NAME).",
        _dump({"environments": {"staging": {"instance_type": DEFAULT_INSTANCE_TYPE,
                                            "instance_count": DEFAULT_INSTANCE_COUNT},
                                "production": {"instance_type": DEFAULT_INSTANCE_TYPE,
                                               "instance_count": DEFAULT_INSTANCE_COUNT,
                                               "slo": DEFAULT_SLO}}}),
        "# Hyperparameter search on the validation split: `python -m ci tune FOLDER --apply` writes the best into\n"
        "# training.hyperparameters above.",
        yaml.safe_dump({"tuning": {"objective": DEFAULT_OBJECTIVE[problem], "budget": {"trials": 40},
                                   "parameters": DEFAULT_SEARCH}},
                       sort_keys=False, default_flow_style=None, width=110),
        "# The endpoint records its traffic for `python -m ci monitor` (thresholds: docs/monitoring.md).",
        _dump({"monitoring": {"data_capture": {"enabled": True, "sampling_percentage": 100}}}),
        gate_note,
        _dump({"quality": quality}),
    ]
    return "\n".join(sections)


#: What a new model's promotion gate asks of its staging endpoint (single-row requests through the Runtime API).
DEFAULT_SLO = {"p50_ms": 100, "p99_ms": 500, "error_rate": 0}


def _comment(text: str) -> str:
    return "\n".join(textwrap.wrap(text, width=110, initial_indent="# ", subsequent_indent="# ",
                                    break_long_words=False, break_on_hyphens=False))


def _dump(value: dict) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=110, allow_unicode=True)


def _has_header(sample: str) -> bool:
    try:
        return csv.Sniffer().has_header(sample)
    except csv.Error:
        first = next(csv.reader(io.StringIO(sample)), [])
        return not any(_is_number(cell) for cell in first)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _positive_label(labels, target: str, given: str | None, *, numeric: bool = False):
    from modelops.config import canonical_label

    classes = sorted(labels.unique().tolist(), key=(_number_order if numeric else str))
    if len(classes) != 2:
        shown = f"{classes[:10]}{'...' if len(classes) > 10 else ''}"
        fix = ("--problem regression" if numeric and len(classes) > MAX_CLASSES
               else "--problem multiclass" if len(classes) > 2 else "another --target")
        raise DataError(f"target {target!r} has {len(classes)} distinct values ({shown}); a binary model needs "
                        f"exactly 2. Fix: pass {fix}.")
    if given is not None:
        match = [c for c in classes if canonical_label(c) == canonical_label(given)]
        if not match:
            raise DataError(f"--positive-label {given!r} is not a value of {target!r} ({classes}). Fix: pass one "
                            f"of them.")
        value = match[0]
    else:
        truthy = [c for c in classes if str(c).strip().lower().rstrip(".") in TRUTHY]
        if len(truthy) != 1:
            raise DataError(f"cannot tell which value of {target!r} is the positive class ({classes}). Fix: pass "
                            f"--positive-label with one of them.")
        value = truthy[0]
    return value.item() if hasattr(value, "item") else value


def _portable_source(source: str, folder: Path) -> str:
    """A URL as given; a local path relative to the model folder when it lies inside the project."""
    if "://" in source:
        return source
    path = Path(source).expanduser().resolve()
    try:
        return os.path.relpath(path, folder) if path.is_relative_to(folder.parent) else str(path)
    except ValueError:
        return str(path)
