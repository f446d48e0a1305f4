"""Data preparation as pure functions: raw table -> features.py -> numeric features with the target first -> splits.

The same steps turn raw records into the model's feature rows at inference (``encode_rows``), with the feature
encoding recorded when the training data was prepared (modelops.data.encoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.config import DataConfig, ModelConfig, SplitConfig, canonical_label
from modelops.data.encoding import FeatureEncoding, all_numbers, canonical_labels, to_numbers, unique_names
from modelops.data.features import apply_features
from modelops.errors import DataError

SPLITS = ("train", "validation", "test")

def read_table(path: str | Path, *, header: bool = True) -> pd.DataFrame:
    """Read a CSV file as text (every cell a string, an empty cell ``""``), with its header row's names cleaned.

    Names are trimmed (a byte-order mark too), an empty name becomes ``column_<position>``, and a name that
    repeats after that gets ``.1``, ``.2``, ... as pandas does, so every column has one unambiguous name.

    Raises:
        DataError: the file is empty, not UTF-8, or not a well-formed CSV (naming the file and the fix).
    """
    path = Path(path)
    frame = _read_text_with_arrow(path)
    if frame is None:
        frame = _read_text_with_pandas(path)
    if header:
        frame.columns = clean_names(frame.iloc[0])
        frame = frame.iloc[1:].reset_index(drop=True)
    return frame


def text_csv_options(width: int):
    """pyarrow's CSV options that read a file as read_table does: every cell text, an empty cell ``""``."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    return (pa_csv.ReadOptions(autogenerate_column_names=True, block_size=16 * 2**20),
            pa_csv.ParseOptions(newlines_in_values=True),
            pa_csv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(width)},
                                  strings_can_be_null=False, quoted_strings_can_be_null=False))


def first_row_width(path: Path) -> int | None:
    """How many cells the file's first row has (None when the file is empty or not UTF-8 text)."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            row = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error):
        return None
    return len(row) if row else None


def arrow_text_table(table):
    """A pyarrow table of text as read_table gives it, or None when pyarrow's reading may differ from pandas'.

    pandas skips the spaces after a delimiter (``skipinitialspace``); a cell pyarrow read with leading spaces is
    trimmed the same way unless it then starts with a quote (a quoted cell after spaces), which only pandas reads.
    """
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        if pc.any(pc.starts_with(column, " ")).as_py():
            column = pc.utf8_ltrim(column, " ")
            if pc.any(pc.starts_with(column, '"')).as_py():
                return None
        columns.append(column)
    return table.from_arrays(columns, names=table.column_names)


def _read_text_with_arrow(path: Path) -> pd.DataFrame | None:
    """The file as text through pyarrow (several times faster than pandas), or None to leave it to pandas.

    None for anything pyarrow reads differently or refuses (rows of different lengths, not UTF-8, empty): the
    pandas reader then reads it, or names the problem.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    width = first_row_width(path)
    if width is None:
        return None
    try:
        table = pa_csv.read_csv(path, *text_csv_options(width))
    except (pa.ArrowException, OSError):
        return None
    table = arrow_text_table(table) if table.num_columns == width else None
    return None if table is None else table.to_pandas()


def _read_text_with_pandas(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, skipinitialspace=True,
                            encoding="utf-8-sig")
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path} is empty. Fix: check the source; the download may have been cut short.") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path} is not a well-formed CSV ({exc}). Fix: check the source file.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Fix: save the file as "
                        f"UTF-8.") from exc
    return frame.fillna("")  # a short row's missing cells


def clean_names(names) -> list[str]:
    """Column names as read_table gives them: trimmed, never empty, never repeated."""
    cleaned = [str(name).replace("\ufeff", "").strip() for name in names]
    return unique_names(name or f"column_{position}" for position, name in enumerate(cleaned, 1))


def read_raw(path: str | Path, data: DataConfig) -> pd.DataFrame:
    """Read the raw CSV and check its columns against the model config (schema drift is an error).

    Raises:
        DataError: empty file, or columns missing / extra compared with ``data.columns``.
    """
    path = Path(path)
    frame = read_table(path, header=data.header)
    if frame.empty:
        raise DataError(f"{path} has a header but no rows. Fix: check the source file.")
    frame.columns = raw_columns(path, list(frame.columns), data)
    return frame


def raw_columns(path: Path, found: list[str], data: DataConfig) -> list[str]:
    """The raw table's column names: the header's (checked against data.columns) or data.columns for no header.

    Raises:
        DataError: the file's columns differ from data.columns (schema drift).
    """
    if not data.header:
        if len(found) != len(data.columns):
            raise DataError(
                f"{path} has {len(found)} columns but data.columns in model.yml lists {len(data.columns)} "
                f"({list(data.columns)}). Fix: the data's layout changed; update data.columns to match the file."
            )
        return list(data.columns)
    if data.columns:
        missing = [c for c in data.columns if c not in found]
        extra = [c for c in found if c not in data.columns]
        if missing or extra:
            raise DataError(
                f"{path}: columns differ from data.columns in model.yml (missing: {missing}, unexpected: {extra}). "
                f"Fix: the data's schema drifted; update data.columns (and drop/categorical) after checking why."
            )
    return found


def typed_table(raw: pd.DataFrame, config: ModelConfig, text: frozenset[str] = frozenset()) -> pd.DataFrame:
    """The raw table as features.py receives it: numbers where a column holds only numbers, text elsewhere.

    Columns under data.categorical and a classification target stay text (a numeric code is a label); every
    other column becomes float64 when each of its cells is a number or a missing-value marker, and stays text
    otherwise (features.py may clean it; the preparation after it names the first bad cell). Columns in ``text``
    stay text too (a streamed gather found text in them in another chunk).
    """
    text_columns = {*config.data.categorical, *([config.data.target] if config.problem_type != "regression" else []),
                    *text}
    typed = {}
    for column in raw.columns:
        values = raw[column]
        if column in text_columns:
            typed[column] = _as_text(values)
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            typed[column] = values.astype(np.float64)
        else:
            numbers = all_numbers(values)
            typed[column] = _as_text(values) if numbers is None else numbers
    return pd.DataFrame(typed, index=raw.index)


@dataclass(frozen=True)
class PreparedData:
    """The prepared table (target first, then the features) and how its features were encoded."""

    frame: pd.DataFrame
    encoding: FeatureEncoding
    rows_read: int
    rows_without_target: int  # left out: a row without a label teaches nothing

    def _repr_markdown_(self) -> str:
        left_out = (f"; **{self.rows_without_target} rows without a target left out**"
                    if self.rows_without_target else "")
        return (f"{self.rows_read} rows read, {len(self.frame)} prepared{left_out}; "
                f"{len(self.encoding.feature_names)} features ({len(self.encoding.numeric)} numeric, "
                f"{len(self.encoding.feature_names) - len(self.encoding.numeric)} one-hot)")


def prepare_data(raw: pd.DataFrame, config: ModelConfig) -> PreparedData:
    """Turn the raw table into numeric features, target first, as the SageMaker XGBoost container reads them.

    The model folder's features.py runs first (modelops.data.features). Then ``data.drop`` is dropped,
    ``data.categorical`` one-hot encoded (as text, so a numeric code such as ``Area Code`` is a category), and
    every other column must be numeric (an empty cell is a missing value). Rows whose target is empty are left
    out (counted). A binary target becomes 0/1 (``data.positive_label`` is 1); a multiclass target its index in
    ``data.classes``.

    Raises:
        DataError: missing target, non-numeric values in a numeric column, a single-class binary target,
            a multiclass target value not in data.classes.
        FeaturesError: features.py failed or returned an unusable table.
    """
    data = config.data
    if data.target not in raw.columns:
        raise DataError(f"target column {data.target!r} (data.target) is not in the data; its columns are "
                        f"{list(raw.columns)}. Fix: correct data.target in model.yml.")
    table = apply_features(typed_table(raw.reset_index(drop=True), config), config)
    missing = [c for c in (*data.drop, *data.categorical) if c not in table.columns]
    if missing:
        after = " after features.py" if data.derived else ""
        raise DataError(f"columns {missing} named in data.drop/data.categorical are not in the data{after} (its "
                        f"columns: {[str(c) for c in table.columns]}). Fix: correct model.yml.")
    target, labelled = prepared_target(table[data.target], config)
    table = table[labelled]
    encoding = FeatureEncoding.fit(table, config, raw.columns)
    if not encoding.feature_names:
        raise DataError(f"no feature is left: every column but the target is dropped ({list(data.drop)}). "
                        f"Fix: keep at least one column in model.yml.")
    # Numeric columns first, then the one-hot columns, as pandas.get_dummies on the whole table (the reference
    # tutorial) orders them.
    prepared = pd.concat([target[labelled].rename(data.target), encoding.encode(table)], axis=1)
    return PreparedData(prepared.reset_index(drop=True), encoding, len(raw), int((~labelled).sum()))


def prepare_frame(raw: pd.DataFrame, config: ModelConfig) -> pd.DataFrame:
    """The prepared table of prepare_data (for callers that do not record the encoding)."""
    return prepare_data(raw, config).frame


def encode_rows(config: ModelConfig, raw_frame: pd.DataFrame, encoding, *, unseen: str = "error") -> pd.DataFrame:
    """Raw records (the data's own column names; target optional) as the feature rows the model was trained on.

    The same steps as training: the typed table, features.py, then the recorded encoding (same one-hot columns,
    same order). Columns the model does not use may be present; their order does not matter.

    Args:
        config: the model (its folder's features.py runs).
        raw_frame: one row per record; cells as text or numbers.
        encoding: the FeatureEncoding, or a Dataset carrying it (``modelops.encode_rows`` finds the model's
            latest gathered dataset when none is given).
        unseen: ``"error"`` (a category value never seen in training is refused) or ``"zeros"`` (it sets none
            of the column's one-hot features, as an empty cell does).

    Returns:
        One row per record, columns ``encoding.feature_names``.

    Raises:
        DataError: a needed column is missing, a value does not fit (naming column, value and row).
        FeaturesError: features.py failed.
        StoreError: no encoding is recorded (gather again).
    """
    encoding = _resolve_encoding(config, encoding)
    frame = raw_frame.copy()
    frame.columns = clean_names(frame.columns)
    ignored = {config.data.target, *config.data.drop}
    missing = [c for c in encoding.raw_columns if c not in ignored and c not in frame.columns]
    if missing:
        raise DataError(f"the records lack the columns {missing} (they have {list(frame.columns)}). Fix: send "
                        f"every column of the raw data, named as in its header (the target may be left out).")
    table = typed_table(frame[[c for c in encoding.raw_columns if c in frame.columns]].reset_index(drop=True), config)
    table = apply_features(table, config)
    return encoding.encode(table, unseen=unseen)


def read_records(path: str | Path) -> pd.DataFrame:
    """Raw records from a CSV file with a header row (the data's own column names), as text.

    Raises:
        DataError: the file is empty or not a CSV.
    """
    return read_table(path, header=True)


def split_frame(frame: pd.DataFrame, split: SplitConfig, seed: int | None = None) -> dict[str, pd.DataFrame]:
    """Cut into train / validation / test by the configured ratios, rows chosen by a seeded shuffle.

    Each split keeps its rows in the frame's order (see split_assignment).
    """
    which = split_assignment(len(frame), split, seed)
    return {name: frame.iloc[np.flatnonzero(which == index)].reset_index(drop=True)
            for index, name in enumerate(SPLITS)}


def split_assignment(n: int, split: SplitConfig, seed: int | None = None) -> np.ndarray:
    """Which split each of ``n`` rows goes to (0 train, 1 validation, 2 test), as an int8 array.

    A seeded permutation of the rows is cut by the ratios (rounded counts), so the same rows go to the same split
    however the table is read; each split then keeps its rows in table order, which a gather streaming the table
    in chunks can write as it goes.

    Raises:
        DataError: a split would be empty.
    """
    seed = split.seed if seed is None else int(seed)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * split.train))
    n_validation = int(round(n * split.validation))
    cuts = {"train": order[:n_train], "validation": order[n_train:n_train + n_validation],
            "test": order[n_train + n_validation:]}
    which = np.empty(n, dtype=np.int8)
    for index, (name, rows) in enumerate(cuts.items()):
        if len(rows) == 0:
            raise DataError(f"the {name} split is empty ({n} rows with ratios {split}). Fix: use more data or "
                            f"larger ratios.")
        which[rows] = index
    return which


def features_and_target(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Split a prepared frame (target first) into the feature matrix and the label vector."""
    values = frame.to_numpy(dtype=np.float64)
    return values[:, 1:], values[:, 0]


def prepared_target(column: pd.Series, config: ModelConfig, *, check: bool = True) -> tuple[pd.Series, pd.Series]:
    """(the label as the container trains on it, mask of rows that have one).

    ``check=False`` leaves out the checks that need every row (a streamed gather makes them with check_target).
    """
    name = config.data.target
    if config.problem_type == "regression":
        values = to_numbers(column, name)
        labelled = values.notna()
        labels = None
    else:
        labels = pd.Series(canonical_labels(column), index=column.index, dtype=object)
        labelled = labels != ""
    if config.problem_type == "binary":
        positive = canonical_label(config.data.positive_label)
        values = (labels == positive).astype(np.uint8)
    elif config.problem_type == "multiclass":
        classes = {canonical_label(c): index for index, c in enumerate(config.data.classes)}
        values = labels.map(classes)
        unknown = labelled & values.isna()
        if unknown.any():
            strange = list(dict.fromkeys(labels[unknown]))[:5]
            raise DataError(
                f"target {name!r} holds {strange} ({int(unknown.sum())} rows, first data row "
                f"{int(labels.index[unknown.to_numpy()][0]) + 1}), not in data.classes {list(config.data.classes)}. "
                f"Fix: add the missing classes to data.classes in model.yml, or correct the data.")
        values = values.fillna(-1).astype(np.int64)
    if check:
        seen = labels[labelled].unique() if labels is not None else ()
        check_target(config, int(labelled.sum()), int(values[labelled].sum()), seen)
    return values, labelled


def check_target(config: ModelConfig, labelled: int, positives: int, seen) -> None:
    """The checks on the whole target: some row has one; a binary target has both classes.

    Args:
        labelled: rows with a target. positives: of them, rows of the positive class (binary).
        seen: some of the labels seen (named in the error).

    Raises:
        DataError: naming the problem and the fix.
    """
    name = config.data.target
    if not labelled:
        raise DataError(f"target {name!r} is empty in every row. Fix: check data.target and the data source.")
    if config.problem_type == "binary" and positives in (0, labelled):
        positive = canonical_label(config.data.positive_label)
        raise DataError(
            f"target {name!r} has a single class (values seen: {sorted(seen)[:5]}; positive_label {positive!r}). A "
            f"binary model needs both classes. Fix: check data.positive_label and the data source."
        )


def _as_text(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.StringDtype) and not column.hasnans:
        return column  # text as read: what the conversion below gives
    if pd.api.types.is_float_dtype(column):
        return pd.Series(canonical_labels(column), index=column.index, dtype=object)
    return column.astype(object).where(column.notna(), "").astype(str)


def _resolve_encoding(config: ModelConfig, encoding) -> FeatureEncoding:
    return encoding if isinstance(encoding, FeatureEncoding) else encoding.feature_encoding
