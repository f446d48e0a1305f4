"""Feature encoding: which columns are numbers, which are one-hot categories (and their values), in what order.

Fitted once on the training table and recorded with the dataset (its manifest), then applied to any table with
the same columns: the training table itself and, at inference, raw records (``modelops.encode_rows``). So the
rows a client builds from raw records have exactly the columns, order and values the model was trained on,
without the training data at hand.

Values: numeric columns become float64 (an empty cell, or NA, N/A, NaN, null, None, ``?``, is a missing value,
which XGBoost and the SageMaker container read as missing, not as 0); a categorical column becomes one uint8
column per value seen in training, sorted as text (what ``pandas.get_dummies`` gives, so models prepared before
this module keep their feature names). An empty categorical cell sets none of its columns. A value never seen in
training is an error by default, or sets none of its columns with ``unseen="zeros"``.

Feature names are unique and CSV-safe (no comma, quote, line break or tab; no surrounding space); the one-hot
columns' own (column, value) pairs are recorded, so a name never has to be parsed back.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelops.config import ModelConfig, canonical_label
from modelops.errors import DataError

#: Cells read as a missing number (compared trimmed and lower-cased). ``?`` is the UCI repository's marker.
MISSING_NUMBER = frozenset({"", "na", "n/a", "nan", "null", "none", "#n/a", "<na>", "?"})

#: How an unseen category is encoded: refused, or as no category at all.
UNSEEN = ("error", "zeros")

_UNSAFE = re.compile(r'[,"\r\n\t\x00-\x1f\x7f]+')


@dataclass(frozen=True)
class FeatureEncoding:
    """How the prepared table's columns become the model's features (recorded with the dataset)."""

    raw_columns: tuple[str, ...]  # the data's columns as read, target included, before features.py
    numeric: tuple[str, ...]  # columns used as numbers, in feature order
    categorical: tuple[tuple[str, tuple[str, ...]], ...]  # (column, its values in one-hot order), in order
    feature_names: tuple[str, ...]  # the model's features: numeric first, then the one-hot columns

    @classmethod
    def fit(cls, table: pd.DataFrame, config: ModelConfig, raw_columns) -> FeatureEncoding:
        """The encoding of ``table`` (after features.py; target and dropped columns present or not).

        Numeric columns are every column not dropped, not the target and not listed under data.categorical,
        in table order; categorical columns follow data.categorical's order, each value seen (trimmed text,
        ``2.0`` read as ``2``) becoming a column, sorted as text.
        """
        values = {column: set(category_labels(table[column]).dropna()) for column in config.data.categorical}
        return cls.from_values(list(table.columns), values, config, raw_columns)

    @classmethod
    def from_values(cls, columns, values: dict[str, set[str]], config: ModelConfig, raw_columns) -> FeatureEncoding:
        """The encoding of a table with ``columns`` whose categorical columns hold ``values`` (canonical text).

        What fit decides, from what a streamed gather collects chunk by chunk.
        """
        data = config.data
        skip = {data.target, *data.drop}
        numeric = tuple(str(c) for c in columns if c not in skip and c not in data.categorical)
        categorical = tuple((column, tuple(sorted(values[column]))) for column in data.categorical)
        names = [*numeric, *(f"{column}_{value}" for column, values in categorical for value in values)]
        return cls(tuple(map(str, raw_columns)), numeric, categorical, tuple(unique_names(map(safe_name, names))))

    def encode(self, table: pd.DataFrame, *, unseen: str = "error") -> pd.DataFrame:
        """The feature rows of ``table``: columns ``feature_names``, float64 numbers and uint8 one-hot columns.

        Raises:
            DataError: a column is missing, a numeric column holds text, or (``unseen="error"``) a category
                holds a value the model never saw; each names the column, the value and the row.
        """
        if unseen not in UNSEEN:
            raise ValueError(f"unseen must be one of {UNSEEN}, not {unseen!r}")
        needed = [*self.numeric, *(column for column, _ in self.categorical)]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            raise DataError(f"the table lacks the columns {missing}, which the model was trained on (it has "
                            f"{[str(c) for c in table.columns]}). Fix: send every column of the training data.")
        parts = [pd.DataFrame({c: to_numbers(table[c], c) for c in self.numeric}, index=table.index)]
        for column, values in self.categorical:
            parts.append(self._one_hot(table[column], column, values, unseen))
        encoded = pd.concat(parts, axis=1)
        encoded.columns = list(self.feature_names)
        return encoded

    def _one_hot(self, column: pd.Series, name: str, values: tuple[str, ...], unseen: str) -> pd.DataFrame:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        if any(isinstance(v, bool) for v in uniques):  # True and 1 hash alike: factorize their labels instead
            codes, uniques = pd.factorize(category_labels(column), use_na_sentinel=True)
        labels = category_labels(pd.Series(uniques, dtype=object))  # one canonical label per distinct value
        position = {value: index for index, value in enumerate(values)}
        # -1: missing or empty (no column set); -2: a value never seen in training
        table = np.array([-1 if label is None else position.get(label, -2) for label in labels] + [-1], dtype=np.int64)
        codes = table[codes]
        if unseen == "error" and (codes == -2).any():
            rows = np.flatnonzero(codes == -2)
            strange = list(dict.fromkeys(category_labels(column.iloc[rows[:1000]])))[:5]
            shown = values if len(values) <= 20 else (*values[:20], "...")
            raise DataError(
                f"column {name!r} holds {strange} (first in row {_row(column, rows[0])}, {_rows(len(rows))}), a "
                f"category the model never saw in training (known: {list(shown)}). Fix: correct the value, or "
                f"encode unseen categories as none of the known ones (encode_rows(..., unseen='zeros'), "
                f"`ci invoke --raw FILE --unseen zeros`).")
        matrix = np.zeros((len(column), len(values)), dtype=np.uint8)
        seen = np.flatnonzero(codes >= 0)
        matrix[seen, codes[seen]] = 1
        return pd.DataFrame(matrix, index=column.index, columns=[f"{name}_{v}" for v in values])

    def to_json(self) -> dict:
        return {"raw_columns": list(self.raw_columns), "numeric": list(self.numeric),
                "categorical": [[column, list(values)] for column, values in self.categorical],
                "feature_names": list(self.feature_names)}

    @classmethod
    def from_json(cls, record: dict) -> FeatureEncoding:
        return cls(tuple(record["raw_columns"]), tuple(record["numeric"]),
                   tuple((column, tuple(values)) for column, values in record["categorical"]),
                   tuple(record["feature_names"]))


def to_numbers(column: pd.Series, name: str) -> pd.Series:
    """A column as float64; a missing-value marker (see MISSING_NUMBER) becomes NaN.

    Raises:
        DataError: a cell holds text that is not a number (naming the column, the value and its row).
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64)
    values, bad = parse_numbers(column)
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        shown = str(column.iloc[rows[0]])
        raise DataError(
            f"column {name!r} must be numeric but data row {_row(column, rows[0])} holds {shown!r} "
            f"({_rows(len(rows))} like it). Fix: clean the data (features.py can), or list {name!r} under "
            f"data.categorical if it is a category.")
    return values


def parse_numbers(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(float64 values with NaN for missing cells, mask of cells that are neither a number nor missing)."""
    values = all_numbers(column)
    if values is not None:
        return values, pd.Series(False, index=column.index)
    return _parse_numbers_exact(column)


def _parse_numbers_exact(column: pd.Series) -> tuple[pd.Series, pd.Series]:
    text = column.astype(object).where(column.notna(), "").astype(str).str.strip()
    missing = text.str.lower().isin(MISSING_NUMBER)
    values = pd.to_numeric(text.where(~missing, None), errors="coerce").astype(np.float64)
    return values, values.isna() & ~missing


def all_numbers(column: pd.Series) -> pd.Series | None:
    """The column as float64 (NaN for a missing-value marker) when every cell is a number or missing, else None.

    What parse_numbers decides, in pyarrow's compute kernels instead of a Python call per cell: cells are trimmed,
    markers matched lower-cased, and the rest must be plain decimal numbers (a sign, digits, a point, an exponent),
    which pyarrow and pandas read as the same float64. Only a column with infinities (``inf``, ``-Infinity``) or
    cells that are not text is read cell by cell, by pandas' rules.
    """
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64)
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        array = pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):  # cells that are not text (features.py may return any)
        values, bad = _parse_numbers_exact(column)
        return None if bad.any() else values
    values = _decimal_values(pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array))
    if values is None:  # spaces, markers other than an empty cell, or text: the full rules
        text = pc.utf8_trim_whitespace(array)
        missing = pc.fill_null(pc.is_in(pc.utf8_lower(text), value_set=_missing_markers()), True)
        present = pc.if_else(missing, pa.scalar(None, pa.string()), text)
        decimal = pc.fill_null(pc.match_substring_regex(present, _DECIMAL), True)
        if not pc.all(decimal).as_py():
            infinite = pc.fill_null(pc.match_substring_regex(present, _INFINITE, ignore_case=True), False)
            if not pc.all(pc.or_(decimal, infinite)).as_py():
                return None  # a cell that is no number by either reader's rules
        values = _decimal_values(present)
    if values is None:  # infinities: pandas' rules, cell by cell
        values, bad = _parse_numbers_exact(column)
        return None if bad.any() else values
    return pd.Series(values, index=column.index, dtype=np.float64)


def _decimal_values(present):
    """float64 of text cells (null: NaN) when pyarrow reads every one as a finite number, else None.

    A cell pyarrow reads as infinite or NaN (``inf``, ``Infinity``, ``-nan``) is left to pandas' rules.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        numbers = pc.cast(present, pa.float64())
    except pa.ArrowInvalid:
        return None
    if numbers.null_count < len(numbers) and not pc.all(pc.is_finite(numbers)).as_py():
        return None
    return numbers.to_numpy(zero_copy_only=False)


_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INFINITE = r"^[+-]?(inf|infinity)$"


@functools.cache
def _missing_markers():
    """MISSING_NUMBER as a pyarrow array (built on first use: importing this module does not import pyarrow)."""
    import pyarrow as pa

    return pa.array(sorted(MISSING_NUMBER))


def safe_name(name: str) -> str:
    """``name`` usable as a CSV header cell without quoting: unsafe characters as ``_``, no surrounding space."""
    return _UNSAFE.sub("_", str(name)).strip() or "_"


def unique_names(names) -> list[str]:
    """``names`` with each repeat suffixed ``.1``, ``.2``, ... (as pandas reads a repeated header), all distinct."""
    seen: set[str] = set()
    result = []
    for name in names:
        candidate, n = name, 0
        while candidate in seen:
            n += 1
            candidate = f"{name}.{n}"
        seen.add(candidate)
        result.append(candidate)
    return result


def category_labels(column: pd.Series) -> pd.Series:
    """Category values as canonical text (see config.canonical_label); a missing or empty cell is None."""
    return pd.Series(canonical_labels(column, missing=None), index=column.index, dtype=object)


def canonical_labels(column: pd.Series, *, missing: object = "") -> np.ndarray:
    """canonical_label of every cell (an object array), ``missing`` for a missing or empty one.

    canonical_label runs once per distinct value, not once per row.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if any(isinstance(v, bool) for v in uniques):  # True and 1 hash alike, so factorize merged them: cell by cell
        labels = [missing if v is None or v != v else canonical_label(v) for v in column]
        return np.array([missing if label == "" else label for label in labels], dtype=object)
    labels = [canonical_label(v) for v in uniques]
    table = np.array([missing if label == "" else label for label in labels] + [missing], dtype=object)
    return table[codes]  # code -1 (a missing cell) takes the last entry


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _row(column: pd.Series, position: int) -> int:
    """The 1-based data row of ``position``: the index label when it counts rows (it survives dropped rows)."""
    label = column.index[position]
    return int(label) + 1 if isinstance(label, (int, np.integer)) else position + 1
