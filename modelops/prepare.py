"""Data preparation as pure functions: raw table -> numeric features with the target first -> splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelops.config import DataConfig, ModelConfig, SplitConfig
from modelops.errors import DataError

SPLITS = ("train", "validation", "test")


def read_raw(path: str | Path, data: DataConfig) -> pd.DataFrame:
    """Read the raw CSV and check its columns against the model config (schema drift is an error).

    Raises:
        DataError: empty file, or columns missing / extra compared with ``data.columns``.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, header=0 if data.header else None, dtype=str, keep_default_na=False,
                            skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path} is empty. Fix: check the source; the download may have been cut short.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a well-formed CSV ({exc}). Fix: check the source file.") from exc
    if frame.empty:
        raise DataError(f"{path} has a header but no rows. Fix: check the source file.")
    if not data.header:
        if frame.shape[1] != len(data.columns):
            raise DataError(
                f"{path} has {frame.shape[1]} columns but data.columns in model.yml lists {len(data.columns)} "
                f"({list(data.columns)}). Fix: the data's layout changed; update data.columns to match the file."
            )
        frame.columns = list(data.columns)
    elif data.columns:
        missing = [c for c in data.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in data.columns]
        if missing or extra:
            raise DataError(
                f"{path}: columns differ from data.columns in model.yml (missing: {missing}, unexpected: {extra}). "
                f"Fix: the data's schema drifted; update data.columns (and drop/categorical) after checking why."
            )
    return frame


def prepare_frame(raw: pd.DataFrame, config: ModelConfig) -> pd.DataFrame:
    """Turn the raw table into numeric features, target first, as the SageMaker XGBoost container reads them.

    Drops ``data.drop``; one-hot encodes ``data.categorical`` (as strings, so a numeric code such as
    ``Area Code`` is a category); every other column must be numeric. A binary target becomes 0/1
    (``data.positive_label`` is 1).

    Raises:
        DataError: missing target, non-numeric values in a numeric column, a single-class binary target.
    """
    data = config.data
    if data.target not in raw.columns:
        raise DataError(f"target column {data.target!r} (data.target) is not in the data; its columns are "
                        f"{list(raw.columns)}. Fix: correct data.target in model.yml.")
    missing = [c for c in (*data.drop, *data.categorical) if c not in raw.columns]
    if missing:
        raise DataError(f"columns {missing} named in data.drop/data.categorical are not in the data. "
                        f"Fix: correct model.yml.")
    frame = raw.drop(columns=list(data.drop))
    target = _target(frame[data.target], config)
    features = frame.drop(columns=[data.target])
    numeric = [c for c in features.columns if c not in data.categorical]
    numeric_part = pd.DataFrame({c: _numeric(features[c], c) for c in numeric}, index=features.index)
    categorical_part = pd.get_dummies(features[list(data.categorical)].astype(str), prefix_sep="_", dtype=np.uint8)
    # Keep the raw column order: numeric columns first, then the one-hot columns, as pandas.get_dummies does
    # on the whole table (what the reference tutorial did).
    prepared = pd.concat([target.rename(data.target), numeric_part, categorical_part], axis=1)
    return prepared.reset_index(drop=True)


def split_frame(frame: pd.DataFrame, split: SplitConfig, seed: int | None = None) -> dict[str, pd.DataFrame]:
    """Shuffle with the seed and cut into train / validation / test by the configured ratios."""
    seed = split.seed if seed is None else int(seed)
    n = len(frame)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * split.train))
    n_validation = int(round(n * split.validation))
    cuts = {"train": order[:n_train], "validation": order[n_train:n_train + n_validation],
            "test": order[n_train + n_validation:]}
    for name, rows in cuts.items():
        if len(rows) == 0:
            raise DataError(f"the {name} split is empty ({n} rows with ratios {split}). Fix: use more data or "
                            f"larger ratios.")
    return {name: frame.iloc[rows].reset_index(drop=True) for name, rows in cuts.items()}


def features_and_target(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Split a prepared frame (target first) into the feature matrix and the label vector."""
    values = frame.to_numpy(dtype=np.float64)
    return values[:, 1:], values[:, 0]


def _target(column: pd.Series, config: ModelConfig) -> pd.Series:
    name = config.data.target
    if config.problem_type == "binary":
        positive = str(config.data.positive_label)
        labels = column.astype(str)
        target = (labels == positive).astype(np.uint8)
        if target.nunique() < 2:
            seen = sorted(labels.unique())[:5]
            raise DataError(
                f"target {name!r} has a single class (values seen: {seen}; positive_label {positive!r}). A binary "
                f"model needs both classes. Fix: check data.positive_label and the data source."
            )
        return target
    values = _numeric(column, name)
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise DataError(f"target {name!r} is empty in data row {row + 1}. Fix: drop or fill such rows at the source.")
    return values


def _numeric(column: pd.Series, name: str) -> pd.Series:
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"column {name!r} must be numeric but data row {row + 1} holds {text.iloc[row]!r} "
            f"({int(bad.sum())} such rows). Fix: clean the data, or list {name!r} under data.categorical "
            f"if it is a category."
        )
    return values.astype(np.float64)
