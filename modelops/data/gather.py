"""Gathering a table of any size: read in chunks, prepared, split and written chunk by chunk, memory bounded.

The same dataset, byte for byte, as ``prepare_data`` → ``split_frame`` → ``write_dataset`` on the whole table
(a test says so), in two passes over the file: the first learns what needs every row (which columns hold only
numbers, the categories, how many rows have a target), the second encodes each chunk with that and appends each
split's rows to its file. A file pyarrow cannot read as pandas would (rows of different lengths, a quoted cell
after spaces) is gathered in memory instead.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modelops.backends.base import Store
from modelops.config import ModelConfig
from modelops.data.datasets import (
    Dataset,
    DatasetFile,
    dataset_id,
    dataset_root,
    finish_dataset,
    split_csv,
    target_summary,
    write_dataset,
)
from modelops.data.encoding import FeatureEncoding, canonical_labels, category_labels
from modelops.data.features import apply_features
from modelops.data.prepare import (
    SPLITS,
    arrow_text_table,
    check_target,
    clean_names,
    first_row_width,
    prepare_data,
    prepared_target,
    raw_columns,
    read_raw,
    split_assignment,
    split_frame,
    text_csv_options,
    typed_table,
)
from modelops.data.sources import FetchedSource
from modelops.errors import DataError, FeaturesError

#: Bytes of CSV read per chunk (pyarrow's block size): ~100,000 rows of a 20-column table.
CHUNK_BYTES = 16 * 2**20
#: Prepared rows kept for the summary table and the correlation figure.
SAMPLE_ROWS = 50_000


@dataclass(frozen=True)
class Gathered:
    """A gathered dataset, with what the notebook shows of it: a sample of its rows and every row's target."""

    dataset: Dataset
    encoding: FeatureEncoding
    rows_read: int
    rows_without_target: int
    sample: pd.DataFrame  # prepared rows (target first), a seeded sample in table order
    targets: dict[str, pd.Series]  # every split's target

    @property
    def rows(self) -> int:
        """Prepared rows (those with a target)."""
        return sum(len(t) for t in self.targets.values())

    @property
    def sample_note(self) -> str:
        """What the sample is, for a table or figure built from it."""
        if len(self.sample) == self.rows:
            return f"all {self.rows:,} rows"
        return f"sample of {len(self.sample):,} of {self.rows:,} rows"

    def describe(self) -> pd.DataFrame:
        """pandas' describe() of the prepared features, over the sample (its ``count`` says how many rows)."""
        return self.sample.describe().T

    def _repr_markdown_(self) -> str:
        left_out = (f"; **{self.rows_without_target} rows without a target left out**"
                    if self.rows_without_target else "")
        one_hot = len(self.encoding.feature_names) - len(self.encoding.numeric)
        return (f"{self.rows_read:,} rows read, {self.rows:,} prepared{left_out}; {len(self.encoding.feature_names)} "
                f"features ({len(self.encoding.numeric)} numeric, {one_hot} one-hot); summaries over the "
                f"{self.sample_note}")


def gather_dataset(store: Store, config: ModelConfig, raw: FetchedSource, *, seed: int | None = None,
                   output: str | None = None, chunk_bytes: int = CHUNK_BYTES,
                   sample_rows: int = SAMPLE_ROWS) -> Gathered:
    """Prepare the raw file, split it and write the dataset (as write_dataset), reading it in chunks.

    Memory is bounded by a chunk, plus a few bytes per row (the split of each row, the targets).

    Args:
        raw: the fetched source (modelops.fetch_data).
        seed: the split's seed (None: split.seed in model.yml). output: as write_dataset.
        chunk_bytes: CSV bytes per chunk. sample_rows: prepared rows kept for the summary and figures.

    Raises:
        DataError, FeaturesError: as read_raw and prepare_data, naming the row in the whole file.
        StoreError: a write failed (no manifest is written, so the dataset does not count).
    """
    seed = config.split.seed if seed is None else int(seed)
    chunks = _Chunks(Path(raw.path), config, chunk_bytes)
    try:
        scan = _scan(chunks, config)
    except _InMemory:
        return _gather_in_memory(store, config, raw, seed=seed, output=output, sample_rows=sample_rows)
    encoding = FeatureEncoding.from_values(scan.columns, scan.categories, config, chunks.names)
    if not encoding.feature_names:
        raise DataError(f"no feature is left: every column but the target is dropped ({list(config.data.drop)}). "
                        f"Fix: keep at least one column in model.yml.")
    which = split_assignment(scan.labelled, config.split, seed)
    sampled = _sample_positions(scan.labelled, sample_rows, seed)
    root = dataset_root(store, config, dataset_id(config, raw.sha256, seed), output)
    local = store.local_path(root)  # a store on this disk: the files are moved into place, not copied
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".gather-", dir=local.parent if local is not None else None) as folder:
        paths = {name: Path(folder) / f"{name}.csv" for name in SPLITS}
        targets, sample, digests = _write_splits(chunks, config, scan.text, encoding, which, sampled, paths)

        def write(name: str) -> DatasetFile:
            uri = f"{root}/{name}/{name}.csv"
            if local is None:
                stored = store.put_file(uri, paths[name], content_type="text/csv")
                return DatasetFile(stored.uri, stored.sha256, len(targets[name]))
            target = store.local_path(uri)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(paths[name], target)
            return DatasetFile(target.as_uri(), digests[name], len(targets[name]))

        dataset = finish_dataset(store, config, raw, seed=seed, root=root, write=write,
                                 feature_names=encoding.feature_names,
                                 target_summary={name: target_summary(targets[name], config.problem_type)
                                                 for name in SPLITS},
                                 encoding=encoding, rows_without_target=scan.rows_read - scan.labelled)
    return Gathered(dataset, encoding, scan.rows_read, scan.rows_read - scan.labelled, sample, targets)


class _InMemory(Exception):
    """pyarrow cannot read this file as pandas would: gather it in memory."""


class _Chunks:
    """The raw file as text frames of about ``chunk_bytes``, named and indexed by data row as read_raw would."""

    def __init__(self, path: Path, config: ModelConfig, chunk_bytes: int):
        self.path, self.config, self.chunk_bytes = path, config, chunk_bytes
        self.names: list[str] = []

    def __iter__(self):
        import pyarrow as pa
        import pyarrow.csv as pa_csv

        width = first_row_width(self.path)
        if width is None:
            raise _InMemory
        read, parse, convert = text_csv_options(width)
        read.block_size = self.chunk_bytes
        start, header = 0, self.config.data.header
        try:
            reader = pa_csv.open_csv(self.path, read_options=read, parse_options=parse, convert_options=convert)
            for batch in reader:
                table = arrow_text_table(pa.Table.from_batches([batch]))
                if table is None or table.num_columns != width:
                    raise _InMemory
                frame = table.to_pandas()
                if header:
                    self.names = raw_columns(self.path, clean_names(frame.iloc[0]), self.config.data)
                    frame, header = frame.iloc[1:], False
                elif not self.names:
                    self.names = raw_columns(self.path, [f"f{i}" for i in range(width)], self.config.data)
                if frame.empty:
                    continue
                frame.columns = self.names
                frame.index = pd.RangeIndex(start, start + len(frame))
                start += len(frame)
                yield frame
        except pa.ArrowException as exc:  # rows of different lengths, not UTF-8: pandas reads it or names it
            raise _InMemory from exc
        if start == 0:
            raise _InMemory  # no data rows: read_raw says so


@dataclass
class _Scan:
    rows_read: int = 0
    labelled: int = 0
    positives: int = 0
    columns: list[str] | None = None  # the table's columns after features.py
    text: frozenset[str] = frozenset()  # columns that hold text somewhere (so text in every chunk)
    categories: dict[str, set[str]] | None = None
    seen: set | None = None  # some target labels, for the error on a single class


def _scan(chunks: _Chunks, config: ModelConfig) -> _Scan:
    """The first pass: which columns are text, the categories, the rows with a target.

    features.py must see each column with one type in every chunk, as it would on the whole table. A column found
    to hold text after an earlier chunk read it as numbers makes the pass start again with it as text; features.py
    failing on a chunk makes the pass learn every column's type first (it may have failed on a column read as
    numbers that holds text further on), then start again.
    """
    text: frozenset[str] = frozenset()
    while True:
        try:
            scan = _scan_once(chunks, config, text)
        except FeaturesError:
            everywhere = _text_columns(chunks, config)
            if everywhere <= text:
                raise
            text = everywhere
            continue
        if scan is not None:
            check_target(config, scan.labelled, scan.positives, scan.seen)
            return scan
        text = _text_columns(chunks, config)


def _scan_once(chunks: _Chunks, config: ModelConfig, text: frozenset[str]) -> _Scan | None:
    """One pass with ``text`` read as text; None when a column turned out to hold text after an earlier chunk."""
    always_text = {*config.data.categorical, config.data.target}
    scan = _Scan(text=text, categories={c: set() for c in config.data.categorical}, seen=set())
    for frame in chunks:
        typed = typed_table(frame, config, text)
        found = frozenset(c for c in frame.columns if not pd.api.types.is_float_dtype(typed[c])) - text - always_text
        if found and scan.rows_read:
            return None
        text = scan.text = text | found
        table = _features(typed, config)
        target, labelled = prepared_target(table[config.data.target], config, check=False)
        scan.rows_read += len(frame)
        scan.labelled += int(labelled.sum())
        scan.positives += int(target[labelled].sum()) if config.problem_type == "binary" else 0
        if len(scan.seen) < 10:
            scan.seen |= set(pd.unique(canonical_labels(table[config.data.target][labelled])))
        scan.columns = scan.columns or list(table.columns)
        for column in config.data.categorical:
            scan.categories[column] |= set(category_labels(table[column][labelled]).dropna())
    return scan


def _text_columns(chunks: _Chunks, config: ModelConfig) -> frozenset[str]:
    """The raw columns typed_table reads as text on the whole table (a pass that only reads)."""
    text: frozenset[str] = frozenset()
    for frame in chunks:
        typed = typed_table(frame, config, text)
        text |= {c for c in frame.columns if not pd.api.types.is_float_dtype(typed[c])}
    return text


def _features(typed: pd.DataFrame, config: ModelConfig) -> pd.DataFrame:
    """features.py on a chunk, and the check that the columns model.yml names are there."""
    data = config.data
    if data.target not in typed.columns:
        raise DataError(f"target column {data.target!r} (data.target) is not in the data; its columns are "
                        f"{list(typed.columns)}. Fix: correct data.target in model.yml.")
    table = apply_features(typed, config)
    missing = [c for c in (*data.drop, *data.categorical) if c not in table.columns]
    if missing:
        after = " after features.py" if data.derived else ""
        raise DataError(f"columns {missing} named in data.drop/data.categorical are not in the data{after} (its "
                        f"columns: {[str(c) for c in table.columns]}). Fix: correct model.yml.")
    return table


def _write_splits(chunks: _Chunks, config: ModelConfig, text: frozenset[str], encoding: FeatureEncoding,
                  which: np.ndarray, sampled: np.ndarray, paths: dict[str, Path]):
    """The second pass: each chunk prepared, encoded and appended to its splits' files."""
    files = {name: open(path, "wb") for name, path in paths.items()}  # noqa: SIM115 - closed below
    digests = {name: hashlib.sha256() for name in SPLITS}
    targets: dict[str, list] = {name: [] for name in SPLITS}
    sample, position = [], 0
    try:
        for frame in chunks:
            table = _features(typed_table(frame, config, text), config)
            target, labelled = prepared_target(table[config.data.target], config, check=False)
            prepared = pd.concat([target[labelled].rename(config.data.target), encoding.encode(table[labelled])],
                                 axis=1)
            rows = len(prepared)
            part_of = which[position:position + rows]
            lo, hi = np.searchsorted(sampled, [position, position + rows])
            if hi > lo:
                sample.append(prepared.iloc[sampled[lo:hi] - position])
            for index, name in enumerate(SPLITS):
                part = prepared.iloc[np.flatnonzero(part_of == index)]
                lines = split_csv(part)
                files[name].write(lines)
                digests[name].update(lines)
                targets[name].append(part.iloc[:, 0].to_numpy())
            position += rows
        for handle in files.values():
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        for handle in files.values():
            handle.close()
    targets = {name: pd.Series(np.concatenate(parts), name=config.data.target) for name, parts in targets.items()}
    return targets, pd.concat(sample).reset_index(drop=True), {n: d.hexdigest() for n, d in digests.items()}


def _sample_positions(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of ``size`` of ``n`` prepared rows, drawn with the split's seed (all rows when fewer)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=size, replace=False))


def _gather_in_memory(store: Store, config: ModelConfig, raw: FetchedSource, *, seed: int, output: str | None,
                      sample_rows: int) -> Gathered:
    """What gather_dataset does, on the whole table at once (for a file pyarrow does not read as pandas does)."""
    prepared = prepare_data(read_raw(raw.path, config.data), config)
    splits = split_frame(prepared.frame, config.split, seed)
    dataset = write_dataset(store, config, raw, splits, seed=seed, output=output, prepared=prepared)
    sample = prepared.frame.iloc[_sample_positions(len(prepared.frame), sample_rows, seed)].reset_index(drop=True)
    targets = {name: frame.iloc[:, 0].rename(config.data.target) for name, frame in splits.items()}
    return Gathered(dataset, prepared.encoding, prepared.rows_read, prepared.rows_without_target, sample, targets)
